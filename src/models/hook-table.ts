import type { ModelConfig } from './config.js';

/**
 * A named axis of an activation. batch, pos, query_pos and key_pos vary from call to call; the others
 * are sizes from the config ('1' is a kept reduction axis, as a norm's hook_scale).
 */
export type Axis =
  'batch' | 'pos' | 'query_pos' | 'key_pos' | 'd_model' | 'n_heads' | 'n_kv_heads' | 'd_head' | 'd_mlp' | '1';

/** One hook point of a forward pass: its TransformerLens name, its layer and its named axes. */
export interface HookPointSpec {
  name: string;
  /** The block it is in; null for the embeddings and ln_final. */
  layer: number | null;
  axes: readonly Axis[];
}

export interface HookTableOptions {
  /** Include blocks.L.attn.hook_result (each head's output; TransformerLens's use_attn_result). */
  useAttnResult?: boolean;
  /** Include the per-head and MLP input copies (the forward's useSplitInputs); ln1's hooks go silent. */
  useSplitInputs?: boolean;
}

const RESID: readonly Axis[] = ['batch', 'pos', 'd_model'];
const SCORES: readonly Axis[] = ['batch', 'n_heads', 'query_pos', 'key_pos'];

/**
 * Every hook point a forward pass of this config reaches, in the order it reaches them. The one place
 * that lists hook points: names, shapes, splice checks and position axes are all read from it, and the
 * tests check each architecture's forward against it.
 */
export function hookTable(cfg: ModelConfig, opts: HookTableOptions = {}): HookPointSpec[] {
  const out: HookPointSpec[] = [];
  let layer: number | null = null;
  const add = (name: string, axes: readonly Axis[]) => out.push({ name, layer, axes });
  // A norm over the last axis of an activation with these leading axes: hook_scale keeps that axis as 1.
  const norm = (n: string, lead: readonly Axis[], width: Axis) => {
    if (cfg.normalization === 'none') return;
    add(`${n}.hook_scale`, [...lead, '1']);
    add(`${n}.hook_normalized`, [...lead, width]);
  };
  const heads = (h: Axis): Axis[] => ['batch', 'pos', h, 'd_head'];
  add('hook_embed', RESID);
  if (cfg.positional === 'learned') add('hook_pos_embed', RESID);
  for (let l = 0; l < cfg.nLayers; l++) {
    layer = l;
    const b = `blocks.${l}`;
    add(`${b}.hook_resid_pre`, RESID);
    if (opts.useSplitInputs) {
      add(`${b}.hook_q_input`, ['batch', 'pos', 'n_heads', 'd_model']);
      add(`${b}.hook_k_input`, ['batch', 'pos', 'n_kv_heads', 'd_model']);
      add(`${b}.hook_v_input`, ['batch', 'pos', 'n_kv_heads', 'd_model']);
    } else norm(`${b}.ln1`, ['batch', 'pos'], 'd_model');
    add(`${b}.attn.hook_q`, heads('n_heads'));
    add(`${b}.attn.hook_k`, heads('n_kv_heads'));
    add(`${b}.attn.hook_v`, heads('n_kv_heads'));
    if (cfg.qkNorm) {
      norm(`${b}.attn.q_norm`, ['batch', 'pos', 'n_heads'], 'd_head');
      norm(`${b}.attn.k_norm`, ['batch', 'pos', 'n_kv_heads'], 'd_head');
    }
    if (cfg.positional === 'rotary') {
      add(`${b}.attn.hook_rot_q`, heads('n_heads'));
      add(`${b}.attn.hook_rot_k`, heads('n_kv_heads'));
    }
    add(`${b}.attn.hook_attn_scores`, SCORES);
    add(`${b}.attn.hook_pattern`, SCORES);
    add(`${b}.attn.hook_z`, heads('n_heads'));
    if (opts.useAttnResult) add(`${b}.attn.hook_result`, ['batch', 'pos', 'n_heads', 'd_model']);
    if (cfg.postNorms) norm(`${b}.ln1_post`, ['batch', 'pos'], 'd_model');
    add(`${b}.hook_attn_out`, RESID);
    if (cfg.attnOnly) {
      add(`${b}.hook_resid_post`, RESID);
      continue;
    }
    if (!cfg.parallelAttnMlp) add(`${b}.hook_resid_mid`, RESID);
    if (opts.useSplitInputs) add(`${b}.hook_mlp_in`, RESID);
    norm(`${b}.ln2`, ['batch', 'pos'], 'd_model');
    if (cfg.gatedMlp) add(`${b}.mlp.hook_pre_linear`, ['batch', 'pos', 'd_mlp']);
    add(`${b}.mlp.hook_pre`, ['batch', 'pos', 'd_mlp']);
    add(`${b}.mlp.hook_post`, ['batch', 'pos', 'd_mlp']);
    if (cfg.postNorms) norm(`${b}.ln2_post`, ['batch', 'pos'], 'd_model');
    add(`${b}.hook_mlp_out`, RESID);
    add(`${b}.hook_resid_post`, RESID);
  }
  layer = null;
  norm('ln_final', ['batch', 'pos'], 'd_model');
  return out;
}

/** Every hook point's name, in forward order. */
export function hookNames(cfg: ModelConfig, opts: HookTableOptions = {}): string[] {
  return hookTable(cfg, opts).map((h) => h.name);
}

/** The spec of one hook point of this config (hook_result included), or undefined. */
export function hookSpec(cfg: ModelConfig, name: string): HookPointSpec | undefined {
  return hookTable(cfg, { useAttnResult: true }).find((h) => h.name === name);
}

/** The size of an axis fixed by the config; null for the axes that vary per call. */
export function axisSize(cfg: ModelConfig, axis: Axis): number | null {
  switch (axis) {
    case 'd_model':
      return cfg.dModel;
    case 'n_heads':
      return cfg.nHeads;
    case 'n_kv_heads':
      return cfg.nKvHeads;
    case 'd_head':
      return cfg.dHead;
    case 'd_mlp':
      return cfg.dMlp;
    case '1':
      return 1;
    default:
      return null;
  }
}

/** The shape of a hook point's activation for a pass over [batch, pos] tokens after `past` cached ones. */
export function hookShape(
  cfg: ModelConfig,
  spec: HookPointSpec,
  batch: number,
  pos: number,
  past = 0,
): number[] {
  return spec.axes.map((a) => {
    if (a === 'batch') return batch;
    if (a === 'pos' || a === 'query_pos') return pos;
    if (a === 'key_pos') return past + pos;
    return axisSize(cfg, a)!;
  });
}

/** The axis that indexes (query) positions. */
export function positionAxisOf(spec: HookPointSpec): number {
  const i = spec.axes.findIndex((a) => a === 'pos' || a === 'query_pos');
  return i < 0 ? 1 : i;
}

/**
 * The activation's shape after [batch, pos] (sizes from the config) when it has one value vector per
 * position; null where it does not (attention scores and patterns: [batch, head, query, key]).
 */
export function trailingShape(cfg: ModelConfig, spec: HookPointSpec): number[] | null {
  if (spec.axes[0] !== 'batch' || spec.axes[1] !== 'pos') return null;
  const rest = spec.axes.slice(2).map((a) => axisSize(cfg, a));
  return rest.every((s): s is number => s !== null) ? rest : null;
}

/** Written as `[batch, pos, n_heads, d_head]`. */
export function showAxes(spec: HookPointSpec): string {
  return `[${spec.axes.join(', ')}]`;
}
