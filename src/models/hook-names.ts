import type { ModelConfig } from './config.js';

/** Every hook point a forward pass of this config reaches, in order (TransformerLens names). */
export function hookNames(cfg: ModelConfig, opts: { useAttnResult?: boolean } = {}): string[] {
  const names = ['hook_embed'];
  if (cfg.positional === 'learned') names.push('hook_pos_embed');
  const ln = cfg.normalization !== 'none';
  const normHooks = (n: string) => [`${n}.hook_scale`, `${n}.hook_normalized`];
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}`;
    names.push(`${b}.hook_resid_pre`);
    if (ln) names.push(...normHooks(`${b}.ln1`));
    names.push(`${b}.attn.hook_q`, `${b}.attn.hook_k`, `${b}.attn.hook_v`);
    if (cfg.qkNorm) names.push(...normHooks(`${b}.attn.q_norm`), ...normHooks(`${b}.attn.k_norm`));
    if (cfg.positional === 'rotary') names.push(`${b}.attn.hook_rot_q`, `${b}.attn.hook_rot_k`);
    names.push(`${b}.attn.hook_attn_scores`, `${b}.attn.hook_pattern`, `${b}.attn.hook_z`);
    if (opts.useAttnResult) names.push(`${b}.attn.hook_result`);
    if (cfg.postNorms) names.push(...normHooks(`${b}.ln1_post`));
    names.push(`${b}.hook_attn_out`);
    if (cfg.attnOnly) {
      names.push(`${b}.hook_resid_post`);
      continue;
    }
    if (!cfg.parallelAttnMlp) names.push(`${b}.hook_resid_mid`);
    if (ln) names.push(...normHooks(`${b}.ln2`));
    if (cfg.gatedMlp) names.push(`${b}.mlp.hook_pre_linear`);
    names.push(`${b}.mlp.hook_pre`, `${b}.mlp.hook_post`);
    if (cfg.postNorms) names.push(...normHooks(`${b}.ln2_post`));
    names.push(`${b}.hook_mlp_out`, `${b}.hook_resid_post`);
  }
  if (ln) names.push(...normHooks('ln_final'));
  return names;
}
