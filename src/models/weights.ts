import { WeightError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';

/**
 * A model's weights under TransformerLens-style names, laid out for fast matmuls:
 *   embed.W_E [vocab, d_model]            pos_embed.W_pos [n_ctx, d_model]
 *   blocks.L.ln1.w/b, ln2.w/b [d_model]    ln_final.w/b [d_model]
 *   blocks.L.attn.W_Q [d_model, n_heads*d_head]   W_K, W_V [d_model, n_kv_heads*d_head]
 *   blocks.L.attn.W_O [n_heads*d_head, d_model]    b_Q, b_K, b_V, b_O
 *   blocks.L.mlp.W_in, W_gate [d_model, d_mlp]   W_out [d_mlp, d_model]   b_in, b_out, b_gate
 *   unembed.W_U [d_model, vocab]  unembed.b_U [vocab]
 * Head h of W_Q is columns h*d_head..(h+1)*d_head (TransformerLens's W_Q[h]).
 */
export type Weights = Map<string, Tensor>;

/** The read side of a checkpoint (SafetensorsCheckpoint implements it). */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  info(name: string): { shape: number[] };
  readFloat32(name: string): Float32Array;
}

/** Reads a tensor and checks its shape, naming the checkpoint tensor on mismatch. */
export function readWeight(src: WeightSource, name: string, shape: number[]): Float32Array {
  if (!src.has(name)) throw new WeightError(`checkpoint has no tensor '${name}'`);
  const got = src.info(name).shape;
  if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
    throw new WeightError(`tensor '${name}' has shape [${got}], expected [${shape}] from config.json`);
  }
  return src.readFloat32(name);
}

/** [rows, cols] -> [cols, rows] (nn.Linear [out, in] to Sonde's [in, out]). */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  // Tiles keep both the rows read and the rows written in cache: a plain loop over a large matrix
  // misses on every write and dominated the loading of multi-GB checkpoints.
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[base + c]!;
      }
    }
  }
  return out;
}

/** Columns [from, to) of a row-major [rows, cols] matrix. */
export function sliceColumns(
  data: Float32Array,
  rows: number,
  cols: number,
  from: number,
  to: number,
): Float32Array {
  const w = to - from;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols + from, r * cols + to), r * w);
  return out;
}

export function tensor(data: Float32Array, shape: number[]): Tensor {
  return new Tensor(data, shape);
}

/** Reads HF tensors (names relative to `prefix`) into `w` under Sonde's names and layout. */
export interface WeightMapper {
  /** A vector, optionally mapped elementwise (Gemma's 1 + w). */
  vec(name: string, hfName: string, n: number, f?: (x: number) => number): void;
  /** An nn.Linear weight [out, in], stored as Sonde's [in, out]. */
  linear(name: string, hfName: string, out: number, inp: number): void;
  /** unembed.W_U: the untied head (an absolute name) transposed, else the embedding's transpose. */
  unembed(embed: Float32Array, head: string, tied: boolean, vocab: number, dModel: number): void;
}

export function weightMapper(src: WeightSource, w: Weights, prefix = ''): WeightMapper {
  return {
    vec(name, hfName, n, f) {
      const data = readWeight(src, prefix + hfName, [n]);
      w.set(name, tensor(f ? data.map(f) : data, [n]));
    },
    linear(name, hfName, out, inp) {
      w.set(name, tensor(transpose2d(readWeight(src, prefix + hfName, [out, inp]), out, inp), [inp, out]));
    },
    unembed(embed, head, tied, V, D) {
      const lm = tied || !src.has(head) ? embed : readWeight(src, head, [V, D]);
      w.set('unembed.W_U', tensor(transpose2d(lm, V, D), [D, V]));
    },
  };
}

/** Finds a tensor under any of the given prefixes (checkpoints differ: 'transformer.h.0' vs 'h.0'). */
export function resolvePrefix(src: WeightSource, candidates: string[], probe: string): string {
  for (const p of candidates) if (src.has(p + probe)) return p;
  throw new WeightError(
    `checkpoint has no '${candidates.map((p) => p + probe).join("' or '")}' (is this the right architecture?)`,
  );
}

/** A WeightSource that passes every call to another; wrappers override what they observe. */
export class WrappedSource<S extends WeightSource = WeightSource> implements WeightSource {
  constructor(protected readonly inner: S) {}

  names(): string[] {
    return this.inner.names();
  }

  has(name: string): boolean {
    return this.inner.has(name);
  }

  info(name: string): { shape: number[] } {
    return this.inner.info(name);
  }

  readFloat32(name: string): Float32Array {
    return this.inner.readFloat32(name);
  }
}

/** A WeightSource that records the tensors read, so that a load can refuse tensors it left unused. */
export class ReadTracker extends WrappedSource {
  readonly read = new Set<string>();

  override readFloat32(name: string): Float32Array {
    this.read.add(name);
    return this.inner.readFloat32(name);
  }

  /**
   * Throws WeightError listing the checkpoint tensors that were not read and are not known harmless
   * extras of the architecture (`extras`: buffers such as rotary_emb.inv_freq, a tied lm_head copy):
   * a tensor the loader does not understand means the model would run without it, and wrong.
   */
  checkAllUsed(extras: readonly RegExp[], where: string): void {
    const unused = this.names().filter((n) => !this.read.has(n) && !extras.some((r) => r.test(n)));
    if (unused.length === 0) return;
    const shown = unused.slice(0, 8).map((n) => `'${n}'`);
    if (unused.length > 8) shown.push(`and ${unused.length - 8} more`);
    throw new WeightError(
      `${where}: ${unused.length} checkpoint tensor(s) would be left unused: ${shown.join(', ')}; ` +
        'the model would run without them (a config.json key, e.g. a bias flag, may be missing or unsupported)',
    );
  }
}
