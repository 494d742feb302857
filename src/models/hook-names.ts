import type { ModelConfig } from './config.js';

/** Every hook point a forward pass of this config reaches, in order (TransformerLens names). */
export function hookNames(cfg: ModelConfig, opts: { useAttnResult?: boolean } = {}): string[] {
  const names = ['hook_embed'];
  if (cfg.positional === 'learned') names.push('hook_pos_embed');
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}`;
    const ln = cfg.normalization !== 'none';
    names.push(`${b}.hook_resid_pre`);
    if (ln) names.push(`${b}.ln1.hook_scale`, `${b}.ln1.hook_normalized`);
    names.push(`${b}.attn.hook_q`, `${b}.attn.hook_k`, `${b}.attn.hook_v`);
    if (cfg.positional === 'rotary') names.push(`${b}.attn.hook_rot_q`, `${b}.attn.hook_rot_k`);
    names.push(`${b}.attn.hook_attn_scores`, `${b}.attn.hook_pattern`, `${b}.attn.hook_z`);
    if (opts.useAttnResult) names.push(`${b}.attn.hook_result`);
    names.push(`${b}.hook_attn_out`);
    if (cfg.attnOnly) {
      names.push(`${b}.hook_resid_post`);
      continue;
    }
    names.push(`${b}.hook_resid_mid`);
    if (ln) names.push(`${b}.ln2.hook_scale`, `${b}.ln2.hook_normalized`);
    if (cfg.gatedMlp) names.push(`${b}.mlp.hook_pre_linear`);
    names.push(`${b}.mlp.hook_pre`, `${b}.mlp.hook_post`, `${b}.hook_mlp_out`, `${b}.hook_resid_post`);
  }
  if (cfg.normalization !== 'none') names.push('ln_final.hook_scale', 'ln_final.hook_normalized');
  return names;
}
