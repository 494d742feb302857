import { ShapeError } from '../errors.js';
import {
  add,
  div,
  eq,
  gelu,
  gt,
  maximum,
  mul,
  relu,
  silu,
  sqrt,
  sub,
  tanh,
  where,
} from '../engine/ops/elementwise.js';
import { matmul, softmax } from '../engine/ops/nn.js';
import { mean, sum } from '../engine/ops/reduce.js';
import { cast, concat, expand, gather, permute, reshape, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import { attnTypeOf, ropeInvFreq, type ModelConfig } from './config.js';
import { checkAttentionMemory, checkContext } from './context.js';
import { NO_HOOKS, type HookPoint } from './hook-point.js';
import type { Weights } from './weights.js';

/** Keys and values of earlier positions, per layer, for incremental decoding. */
export interface KVCache {
  k: (Tensor | null)[]; // [batch, pos, n_kv_heads, d_head]
  v: (Tensor | null)[];
  length: number;
}

export function emptyKVCache(cfg: ModelConfig): KVCache {
  return { k: new Array(cfg.nLayers).fill(null), v: new Array(cfg.nLayers).fill(null), length: 0 };
}

export interface ForwardOptions {
  hook?: HookPoint;
  /** [batch, pos] of 1 (token) and 0 (padding). Positions count real tokens only, as HF does. */
  attentionMask?: Tensor;
  kvCache?: KVCache;
  /** Compute per-head outputs at blocks.L.attn.hook_result (TransformerLens's use_attn_result). */
  useAttnResult?: boolean;
  /**
   * Give each head its own copy of the residual stream at blocks.L.hook_q_input / hook_k_input /
   * hook_v_input [batch, pos, n_heads | n_kv_heads, d_model] (TransformerLens's use_split_qkv_input), and
   * the MLP its own at blocks.L.hook_mlp_in: circuit methods patch each receiver's input on its own.
   * ln1 then runs per head, without its hooks.
   */
  useSplitInputs?: boolean;
  /** Stop after this block's resid_post and return it instead of logits. */
  stopAtLayer?: number;
  /**
   * Start at this block with `residual` as its hook_resid_pre (the layers before are not run: patching
   * sweeps reuse cached activations). `tokens` still gives positions and shapes.
   */
  startAtLayer?: number;
  residual?: Tensor;
  /**
   * Int64 positions [q]: the logits only at these positions, [batch, q, vocab] (a metric that scores the
   * last position need not unembed the others).
   */
  logitPositions?: Tensor;
}

interface Ctx {
  cfg: ModelConfig;
  w: Weights;
  hp: HookPoint;
  rope: { global: RopeTables; local: RopeTables } | null;
  mask: { global: Tensor; local: Tensor | null }; // bool [batch|1, 1, q, k], true = masked
  opts: ForwardOptions;
}

interface RopeTables {
  cos: Tensor; // [batch|1, pos, 1, rotary_dim]
  sin: Tensor;
}

/** Token ids [batch, pos] -> logits [batch, pos, vocab]. The whole model in one screen. */
export function forward(cfg: ModelConfig, w: Weights, tokens: Tensor, opts: ForwardOptions = {}): Tensor {
  if (tokens.rank !== 2) throw new ShapeError(`tokens must be [batch, pos], got [${tokens.shape}]`);
  const [B, P] = tokens.shape as [number, number];
  const past = opts.kvCache?.length ?? 0;
  checkContext(cfg, past + P);
  checkAttentionMemory(cfg, B, P, past);
  const hp = opts.hook ?? NO_HOOKS;
  const positions = positionIds(B, P, past, opts.attentionMask);
  const hasLocal = cfg.attnTypes?.includes('local') ?? false;
  const ctx: Ctx = {
    cfg,
    w,
    hp,
    rope: null,
    mask: {
      global: attentionMask(B, P, past, opts.attentionMask),
      local: hasLocal ? attentionMask(B, P, past, opts.attentionMask, cfg.windowSize) : null,
    },
    opts,
  };

  const start = opts.startAtLayer ?? 0;
  if (cfg.positional === 'rotary') {
    const global = rotaryTables(cfg, positions, past + P);
    // Gemma 3's local layers rotate with their own base and no scaling.
    const local =
      cfg.localRopeTheta !== undefined
        ? rotaryTables({ ...cfg, ropeTheta: cfg.localRopeTheta, ropeScaling: null }, positions, past + P)
        : global;
    ctx.rope = { global, local };
  }
  let resid: Tensor;
  if (start > 0 || opts.residual) {
    const r = opts.residual;
    if (!r || r.rank !== 3 || r.shape[0] !== B || r.shape[1] !== P || r.shape[2] !== cfg.dModel) {
      throw new ShapeError(
        `startAtLayer needs a residual of shape [${B}, ${P}, ${cfg.dModel}], got ${r ? `[${r.shape}]` : 'none'}`,
      );
    }
    if (!(start >= 0 && start < cfg.nLayers))
      throw new ShapeError(`startAtLayer ${start} is not a layer of this model`);
    resid = r;
  } else {
    const embed = hp('hook_embed', gather(w.get('embed.W_E')!, 0, tokens)); // [batch, pos, d_model]
    resid = embed;
    if (cfg.positional === 'learned') {
      // [batch, pos, d_model] as the hook table says, also when the positions are shared ([1, pos]).
      const pos = expand(gather(w.get('pos_embed.W_pos')!, 0, positions), [B, P, cfg.dModel]);
      resid = add(embed, hp('hook_pos_embed', pos));
    }
  }
  for (let l = start; l < cfg.nLayers; l++) {
    resid = block(ctx, l, resid);
    if (opts.stopAtLayer === l) return resid;
  }
  if (opts.kvCache) opts.kvCache.length = past + P;
  if (opts.logitPositions) resid = gather(resid, 1, opts.logitPositions);
  return unembed(cfg, w, norm(ctx, 'ln_final', resid));
}

/** Final-normed residual [..., d_model] -> logits [..., vocab]: W_U, b_U and Gemma 2's soft-cap. */
export function unembed(cfg: ModelConfig, w: Weights, x: Tensor): Tensor {
  let logits = matmul(x, w.get('unembed.W_U')!);
  const bU = w.get('unembed.b_U');
  if (bU) logits = add(logits, bU);
  return cfg.finalSoftcap ? softcap(logits, cfg.finalSoftcap) : logits;
}

function softcap(x: Tensor, cap: number): Tensor {
  return mul(tanh(mul(x, 1 / cap)), cap);
}

function block(ctx: Ctx, l: number, residIn: Tensor): Tensor {
  const { hp, cfg } = ctx;
  const p = `blocks.${l}`;
  const resid = hp(`${p}.hook_resid_pre`, residIn);
  // hook_attn_out / hook_mlp_out hold what joins the residual stream: after Gemma's post-norms.
  const post = (name: string, x: Tensor) => (cfg.postNorms ? norm(ctx, `${p}.${name}`, x) : x);
  const split = ctx.opts.useSplitInputs === true;
  const attnIn = split ? splitQkvInputs(ctx, l, resid) : norm(ctx, `${p}.ln1`, resid);
  const attnOut = hp(`${p}.hook_attn_out`, post('ln1_post', attention(ctx, l, attnIn)));
  if (cfg.attnOnly) return hp(`${p}.hook_resid_post`, add(resid, attnOut));
  // The MLP's own copy of what it reads, so that patching it leaves the residual stream as it is.
  // A new node (not x itself, which the residual stream carries on), so that a gradient taken there is
  // the MLP's alone.
  const mlpIn = (x: Tensor) => (split ? hp(`${p}.hook_mlp_in`, ownCopy(x)) : x);
  if (cfg.parallelAttnMlp) {
    const mlpOut = hp(`${p}.hook_mlp_out`, mlp(ctx, l, norm(ctx, `${p}.ln2`, mlpIn(resid))));
    return hp(`${p}.hook_resid_post`, add(add(resid, attnOut), mlpOut));
  }
  const mid = hp(`${p}.hook_resid_mid`, add(resid, attnOut));
  const mlpOut = hp(`${p}.hook_mlp_out`, post('ln2_post', mlp(ctx, l, norm(ctx, `${p}.ln2`, mlpIn(mid)))));
  return hp(`${p}.hook_resid_post`, add(mid, mlpOut));
}

function ownCopy(x: Tensor): Tensor {
  const [B, P, D] = x.shape as [number, number, number];
  return reshape(reshape(x, [B, P, 1, D]), [B, P, D]);
}

/** Per-head inputs of q, k and v [batch, pos, heads, d_model], each through ln1 (whose hooks stay silent). */
interface SplitInputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

function splitQkvInputs(ctx: Ctx, l: number, resid: Tensor): SplitInputs {
  const { cfg, hp } = ctx;
  const p = `blocks.${l}`;
  const [B, P, D] = resid.shape as [number, number, number];
  const copies = (heads: number) => expand(reshape(resid, [B, P, 1, D]), [B, P, heads, D]);
  const quiet = { ...ctx, hp: NO_HOOKS };
  const input = (name: string, heads: number) => norm(quiet, `${p}.ln1`, hp(`${p}.${name}`, copies(heads)));
  return {
    q: input('hook_q_input', cfg.nHeads),
    k: input('hook_k_input', cfg.nKvHeads),
    v: input('hook_v_input', cfg.nKvHeads),
  };
}

/** LayerNorm or RMSNorm with TransformerLens's hook_scale and hook_normalized (after weight and bias). */
type NormCtx = Pick<Ctx, 'cfg' | 'w' | 'hp'>;

function norm(ctx: NormCtx, name: string, x: Tensor): Tensor {
  const { cfg, w, hp } = ctx;
  if (cfg.normalization === 'none') return x;
  const rms = cfg.normalization === 'RMS' || cfg.normalization === 'RMSPre';
  const centered = rms ? x : sub(x, mean(x, -1, true));
  const scale = hp(`${name}.hook_scale`, sqrt(add(mean(mul(centered, centered), -1, true), cfg.normEps)));
  let y = div(centered, scale);
  const weight = w.get(`${name}.w`);
  const bias = w.get(`${name}.b`);
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return hp(`${name}.hook_normalized`, y);
}

function project(x: Tensor, W: Tensor, b: Tensor | undefined): Tensor {
  const y = matmul(x, W);
  return b ? add(y, b) : y;
}

/** [batch, pos, heads, d_model] -> [batch, pos, heads, d_head]: head h through its own columns of W. */
function projectHeads(x: Tensor, W: Tensor, b: Tensor | undefined, dh: number): Tensor {
  const [B, P, n, D] = x.shape as [number, number, number, number];
  const perHead = reshape(permute(x, [2, 0, 1, 3]), [n, B * P, D]); // one GEMM per head
  const Wh = permute(reshape(W, [D, n, dh]), [1, 0, 2]); // [heads, d_model, d_head]
  const y = permute(reshape(matmul(perHead, Wh), [n, B, P, dh]), [1, 2, 0, 3]);
  return b ? add(y, reshape(b, [n, dh])) : y;
}

function attention(ctx: Ctx, l: number, x: Tensor | SplitInputs): Tensor {
  const { cfg, w, hp, opts } = ctx;
  const a = `blocks.${l}.attn`;
  const { nHeads: H, nKvHeads: KV, dHead: dh } = cfg;
  const heads = (name: 'Q' | 'K' | 'V', n: number): Tensor => {
    const W = w.get(`${a}.W_${name}`)!;
    const b = w.get(`${a}.b_${name}`);
    if (x instanceof Tensor) {
      const [B, P] = x.shape as [number, number];
      return reshape(project(x, W, b), [B, P, n, dh]);
    }
    return projectHeads(name === 'Q' ? x.q : name === 'K' ? x.k : x.v, W, b, dh);
  };
  const [B, P] = (x instanceof Tensor ? x : x.q).shape as [number, number];
  let q = hp(`${a}.hook_q`, heads('Q', H));
  let k = hp(`${a}.hook_k`, heads('K', KV));
  let v = hp(`${a}.hook_v`, heads('V', KV));
  const local = attnTypeOf(cfg, l) === 'local';
  if (ctx.rope) {
    // Per-head norms come before RoPE; without RoPE attentionPattern applies them.
    [q, k] = qkNorms(ctx, a, q, k);
    const { cos, sin } = local ? ctx.rope.local : ctx.rope.global;
    q = hp(`${a}.hook_rot_q`, rotary(cfg, q, cos, sin));
    k = hp(`${a}.hook_rot_k`, rotary(cfg, k, cos, sin));
  }
  const cache = opts.kvCache;
  if (cache) {
    const pk = cache.k[l];
    const pv = cache.v[l];
    if (pk && pv) {
      k = concat([pk, k], 1);
      v = concat([pv, v], 1);
    }
    cache.k[l] = k;
    cache.v[l] = v;
  }
  const K = k.shape[1]!;
  const g = H / KV;
  const mask = local ? ctx.mask.local! : ctx.mask.global;
  const pattern = attentionPattern(cfg, w, l, q, k, { hook: hp, mask }); // [batch, head, q, k]
  const vh = permute(v, [0, 2, 1, 3]); // [batch, kv_head, k, d_head]
  const zh = reshape(matmul(reshape(pattern, [B, KV, g * P, K]), vh), [B, H, P, dh]);
  const z = hp(`${a}.hook_z`, permute(zh, [0, 2, 1, 3])); // [batch, pos, head, d_head]
  const WO = w.get(`${a}.W_O`)!;
  const bO = w.get(`${a}.b_O`);
  if (opts.useAttnResult) {
    // [batch, pos, head, d_model]: each head's write to the residual stream.
    const perHead = matmul(reshape(z, [B, P, H, 1, dh]), reshape(WO, [H, dh, cfg.dModel]));
    const result = hp(`${a}.hook_result`, reshape(perHead, [B, P, H, cfg.dModel]));
    const out = sum(result, 2);
    return bO ? add(out, bO) : out;
  }
  return project(reshape(z, [B, P, H * dh]), WO, bO);
}

const NEG_INF = Tensor.scalar(-Infinity);

/**
 * The hook points whose activations {@link attentionPattern} takes for layer l: the last ones q and k pass
 * before the scores (hook_rot_q/rot_k on rotary models, else hook_q/hook_k).
 */
export function qkHookNames(cfg: ModelConfig, l: number): { q: string; k: string } {
  const r = cfg.positional === 'rotary' ? 'rot_' : '';
  return { q: `blocks.${l}.attn.hook_${r}q`, k: `blocks.${l}.attn.hook_${r}k` };
}

export interface PatternOptions {
  /** Called at hook_attn_scores and hook_pattern (and the q/k norms' hooks); the forward passes its own. */
  hook?: HookPoint;
  /**
   * bool [batch|1, 1, q, k], true = masked. Default: the causal mask of layer l (with its local window),
   * the queries being the last positions of the keys.
   */
  mask?: Tensor;
}

/**
 * Layer l's attention pattern [batch, head, q, k] from q [batch, q, head, d_head] and k [batch, k, kv_head,
 * d_head] at {@link qkHookNames}: the forward's own maths (q/k norms where they follow those hooks, scale,
 * soft-cap, causal mask with the layer's window, grouped-query heads, softmax), so that methods which
 * recompute patterns from patched q or k (AtP*'s QK fix) agree with the model by construction. The batch
 * of q and k may hold many variants of one prompt.
 */
export function attentionPattern(
  cfg: ModelConfig,
  w: Weights,
  l: number,
  qIn: Tensor,
  kIn: Tensor,
  opts: PatternOptions = {},
): Tensor {
  const hp = opts.hook ?? NO_HOOKS;
  const a = `blocks.${l}.attn`;
  const [q, k] = cfg.positional === 'rotary' ? [qIn, kIn] : qkNorms({ cfg, w, hp }, a, qIn, kIn);
  const [B, P, H, dh] = q.shape as [number, number, number, number];
  const K = k.shape[1]!;
  const KV = k.shape[2]!;
  if (k.rank !== 4 || k.shape[0] !== B || k.shape[3] !== dh || H % KV !== 0 || K < P)
    throw new ShapeError(`attentionPattern: q [${q.shape}] and k [${k.shape}] do not fit together`);
  const g = H / KV;
  // Grouped-query attention without copying K: fold each KV head's query group into the row axis.
  const qg = reshape(permute(q, [0, 2, 1, 3]), [B, KV, g * P, dh]);
  const kT = permute(k, [0, 2, 3, 1]); // [batch, kv_head, d_head, k]
  const raw = reshape(matmul(qg, kT), [B, H, P, K]);
  const scaled = mul(raw, cfg.attnScale);
  const capped = cfg.attnSoftcap ? softcap(scaled, cfg.attnSoftcap) : scaled;
  const local = attnTypeOf(cfg, l) === 'local';
  const mask = opts.mask ?? attentionMask(1, P, K - P, undefined, local ? cfg.windowSize : undefined);
  const scores = hp(`${a}.hook_attn_scores`, where(mask, NEG_INF, capped));
  return hp(`${a}.hook_pattern`, softmax(scores, -1));
}

/** Qwen3's and Gemma 3's per-head RMSNorms of q and k over d_head (attn.q_norm, attn.k_norm). */
function qkNorms(ctx: NormCtx, a: string, q: Tensor, k: Tensor): [Tensor, Tensor] {
  if (!ctx.cfg.qkNorm) return [q, k];
  return [norm(ctx, `${a}.q_norm`, q), norm(ctx, `${a}.k_norm`, k)];
}

function mlp(ctx: Ctx, l: number, x: Tensor): Tensor {
  const { cfg, w, hp } = ctx;
  const m = `blocks.${l}.mlp`;
  let post: Tensor;
  if (cfg.gatedMlp) {
    const linear = hp(`${m}.hook_pre_linear`, project(x, w.get(`${m}.W_in`)!, w.get(`${m}.b_in`)));
    const gate = hp(`${m}.hook_pre`, project(x, w.get(`${m}.W_gate`)!, w.get(`${m}.b_gate`)));
    post = hp(`${m}.hook_post`, mul(activation(cfg, gate), linear));
  } else {
    const pre = hp(`${m}.hook_pre`, project(x, w.get(`${m}.W_in`)!, w.get(`${m}.b_in`)));
    post = hp(`${m}.hook_post`, activation(cfg, pre));
  }
  return project(post, w.get(`${m}.W_out`)!, w.get(`${m}.b_out`));
}

function activation(cfg: ModelConfig, x: Tensor): Tensor {
  switch (cfg.act) {
    case 'gelu_new':
      return gelu(x, 'tanh');
    case 'gelu':
      return gelu(x, 'none');
    case 'relu':
      return relu(x);
    case 'silu':
      return silu(x);
  }
}

/** HF rotate_half layout: x*cos + rotate_half(x)*sin over the first rotary_dim features. */
function rotary(cfg: ModelConfig, x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const r = cfg.rotaryDim;
  const d = x.shape[3]!;
  const xr = r === d ? x : slice(x, 3, 0, r);
  const half = r / 2;
  const x1 = slice(xr, 3, 0, half);
  const x2 = slice(xr, 3, half, r);
  const rotated = concat([mul(x2, -1), x1], 3);
  const out = add(mul(xr, cos), mul(rotated, sin));
  return r === d ? out : concat([out, slice(x, 3, r, d)], 3);
}

/**
 * cos/sin of each position's angles [batch|1, pos, 1, rotary_dim]: rows of a host table over positions
 * 0..past+pos-1 (known from shapes), gathered by the position ids (which may come from a mask on the
 * engine), so that no value is read back.
 */
function rotaryTables(cfg: ModelConfig, positions: Tensor, length: number): RopeTables {
  const table = ropeTable(cfg, length);
  const [Bp, P] = positions.shape as [number, number];
  const r = cfg.rotaryDim;
  return {
    cos: reshape(gather(table.cos, 0, positions), [Bp, P, 1, r]),
    sin: reshape(gather(table.sin, 0, positions), [Bp, P, 1, r]),
  };
}

/** Tables by rope settings, grown by doubling: generation steps reuse them. */
const ropeTables = new Map<string, { cos: Tensor; sin: Tensor; length: number }>();

function ropeTable(cfg: ModelConfig, length: number): { cos: Tensor; sin: Tensor } {
  const key = `${cfg.ropeTheta}|${cfg.rotaryDim}|${JSON.stringify(cfg.ropeScaling)}`;
  const have = ropeTables.get(key);
  if (have && have.length >= length) return have;
  const n = Math.max(length, 2 * (have?.length ?? 0), 64);
  const inv = ropeInvFreq(cfg);
  const r = cfg.rotaryDim;
  const cos = new Float32Array(n * r);
  const sin = new Float32Array(n * r);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < r; j++) {
      const angle = t * inv[j % (r / 2)]!;
      cos[t * r + j] = Math.cos(angle);
      sin[t * r + j] = Math.sin(angle);
    }
  }
  const table = { cos: new Tensor(cos, [n, r]), sin: new Tensor(sin, [n, r]), length: n };
  if (ropeTables.size > 16) ropeTables.clear();
  ropeTables.set(key, table);
  return table;
}

/**
 * [batch|1, pos] int64 positions. With a mask [batch, past + pos], a position counts the real tokens
 * before it (padding does not advance it, as HF): the running count comes from a matmul with a
 * triangle of ones on the engine (exact in float32 below 2^24 tokens).
 */
function positionIds(B: number, P: number, past: number, mask?: Tensor): Tensor {
  if (!mask)
    return new Tensor(
      BigInt64Array.from({ length: P }, (_, i) => BigInt(past + i)),
      [1, P],
    );
  checkMask(mask, B, past + P);
  const K = past + P;
  const upper = new Float32Array(K * K); // upper[j, i] = 1 for j <= i: column i sums tokens 0..i
  for (let j = 0; j < K; j++) for (let i = j; i < K; i++) upper[j * K + i] = 1;
  const counts = matmul(cast(mask, 'float32'), new Tensor(upper, [K, K])); // [batch, K], inclusive
  const pos = maximum(sub(counts, 1), Tensor.scalar(0));
  return cast(slice(pos, 1, past, K), 'int64');
}

function checkMask(mask: Tensor, B: number, K: number): void {
  if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== K) {
    throw new ShapeError(
      `attention mask is [${mask.shape}], expected [${B}, ${K}] (batch, past + new tokens)`,
    );
  }
}

/**
 * Causal mask, plus padding keys when a mask is given; a query always sees itself (no empty rows).
 * With a window (local attention, sliding windows), query i sees keys i - window < j <= i, as HF does.
 * The causal part depends on shapes only (a host constant); the padding part is computed on the engine.
 */
function attentionMask(B: number, P: number, past: number, mask?: Tensor, window?: number): Tensor {
  const K = past + P;
  if (mask) checkMask(mask, B, K);
  const outside = new Uint8Array(P * K);
  const notSelf = new Float32Array(P * K);
  for (let i = 0; i < P; i++) {
    const qi = past + i;
    for (let j = 0; j < K; j++) {
      outside[i * K + j] = j > qi || (window !== undefined && j <= qi - window) ? 1 : 0;
      notSelf[i * K + j] = j === qi ? 0 : 1;
    }
  }
  const causal = new Tensor(outside, [1, 1, P, K]);
  if (!mask) return causal;
  // masked = outside || (padded && !self), in 0/1 floats: ONNX Runtime's CPU Where has no bool kernel.
  const padded = reshape(cast(eq(mask, 0), 'float32'), [B, 1, 1, K]);
  const paddedKeys = mul(padded, new Tensor(notSelf, [1, 1, P, K]));
  return gt(add(cast(causal, 'float32'), paddedKeys), 0);
}
