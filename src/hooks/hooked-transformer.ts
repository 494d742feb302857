import { HookError, ShapeError } from '../errors.js';
import { crossEntropy } from '../engine/ops/nn.js';
import { slice } from '../engine/ops/shape.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import { resolveModel } from '../io/hub/resolve-model.js';
import type { HubOptions } from '../io/hub/download.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelConfig } from '../models/config.js';
import { checkAttentionMemory, checkContext, type AttentionKeep } from '../models/context.js';
import { hookNames } from '../models/hook-names.js';
import { defaultModelDir, loadModelDir, type ModelDirOptions } from '../models/load.js';
import { compiledInlineLimit, MAX_COMPILED_GRAPHS } from '../models/memory.js';
import { processWeights, type ProcessOptions } from '../models/process-weights.js';
import { forward, type ForwardOptions } from '../models/transformer.js';
import type { Weights } from '../models/weights.js';
import type { HookPoint } from '../models/hook-point.js';
import { SaeError } from '../sae/config.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import {
  checkSplice,
  makeSplicedHookPoint,
  spliceKey,
  spliceTensors,
  splicedHookNames,
  type SplicedSae,
  type SpliceOptions,
} from '../sae/splice.js';
import { ActivationCache } from './cache.js';
import { generate, type GenerateOptions, type GenerateResult } from './generate.js';
import {
  matches,
  validateSelectors,
  type BackwardHook,
  type ForwardHook,
  type HookPlan,
  type HookSelector,
} from './hooks.js';

/** Text, a batch of texts, token ids, a batch of ids, or an int tensor [batch, pos]. */
export type ModelInput = string | string[] | number[] | number[][] | Tensor;

export interface InputOptions {
  /** Prepend BOS to text; default: what the model's tokenizer does. */
  prependBos?: boolean;
  /** [batch, pos] of 1/0; made automatically when a batch of texts is padded. */
  attentionMask?: Tensor;
}

export interface LoadOptions extends ModelDirOptions {
  /** TransformerLens weight processing (off by default: the raw model). */
  processWeights?: boolean | ProcessOptions;
  /** 'auto' (default) compiles a hook-free forward into one ONNX graph the second time a shape is seen. */
  compile?: 'auto' | 'always' | 'never';
}

export interface CacheOptions extends InputOptions {
  /** Hook names or filters to keep (all when omitted). */
  names?: HookSelector[];
  useAttnResult?: boolean;
}

export interface HookOptions extends InputOptions {
  fwd?: ForwardHook[];
  bwd?: BackwardHook[];
  useAttnResult?: boolean;
  /** Return the residual stream after this layer instead of logits. */
  stopAtLayer?: number;
}

/** Tokens plus the attention mask a padded batch needs. */
export interface Batch {
  tokens: Tensor; // int64 [batch, pos]
  attentionMask: Tensor | null;
}

/**
 * A transformer with TransformerLens hook points on every activation. All methods are synchronous;
 * tensors are garbage-collected.
 */
export class HookedTransformer {
  private traced = new Map<string, { fn: TracedFunction | null; seen: number; weights: Tensor[] }>();
  private spliced: SplicedSae[] = [];

  constructor(
    readonly cfg: ModelConfig,
    readonly weights: Weights,
    readonly tokenizer: Tokenizer | null,
    readonly source = '(in memory)',
    private readonly compileMode: LoadOptions['compile'] = 'auto',
  ) {}

  /** Loads a Hugging Face folder; without a path, the built-in stories260K. */
  static load(dir?: string, opts: LoadOptions = {}): HookedTransformer {
    const m = loadModelDir(dir ?? defaultModelDir(), opts);
    let cfg = m.cfg;
    let weights = m.weights;
    if (opts.processWeights) {
      const p = opts.processWeights === true ? {} : opts.processWeights;
      ({ cfg, weights } = processWeights(cfg, weights, p));
    }
    return new HookedTransformer(cfg, weights, m.tokenizer, m.dir, opts.compile);
  }

  /**
   * Loads a model by folder, alias (`gpt2`, `pythia-70m`, `gemma-2-2b`; see MODEL_ALIASES) or Hub id
   * (`org/name`, `org/name@revision`), downloading it into the Hugging Face cache first when it is not
   * there (HF_TOKEN, HF_HUB_OFFLINE and HF_HUB_CACHE apply, as in Python).
   */
  static async fromPretrained(
    spec?: string,
    opts: LoadOptions & { hub?: HubOptions } = {},
  ): Promise<HookedTransformer> {
    const { hub, ...load } = opts;
    return HookedTransformer.load(await resolveModel(spec, hub), load);
  }

  /**
   * Every hook point's name, in the order a forward pass reaches them; a spliced SAE's points
   * (`H.hook_sae_input`, ...) follow the hook H it replaces.
   */
  hookNames(opts: { useAttnResult?: boolean } = {}): string[] {
    return splicedHookNames(hookNames(this.cfg, opts), this.spliced);
  }

  /** The SAEs and transcoders spliced into every forward pass, in the order they were added. */
  get saes(): readonly SplicedSae[] {
    return Object.freeze([...this.spliced]);
  }

  /**
   * Splices an SAE (or transcoder) into every forward pass of the model (SAELens's add_sae): the
   * activation at its hook (cfg.hookNameOut for a transcoder) is replaced by the SAE's output, and its
   * internal points become hook points `H.hook_sae_input`, `H.hook_sae_acts_pre`, `H.hook_sae_acts_post`,
   * `H.hook_sae_recons`, `H.hook_sae_error` (with the error term) and `H.hook_sae_output`. Throws SaeError
   * when the hook is not in the model, the widths do not match, or the hook already has an SAE.
   */
  addSAE(sae: SparseAutoencoder, opts: SpliceOptions = {}): this {
    const modelHooks = hookNames(this.cfg, { useAttnResult: true });
    this.spliced = [...this.spliced, checkSplice(this.cfg, modelHooks, this.spliced, sae, opts)];
    return this;
  }

  /**
   * Removes the SAE replacing `which` (a hook name: the hook it replaces or, for a transcoder, the one it
   * reads), or that SAE object; without an argument, the only spliced SAE. Returns it.
   */
  removeSAE(which?: string | SparseAutoencoder): SparseAutoencoder {
    let found: SplicedSae | undefined;
    if (which === undefined) {
      if (this.spliced.length !== 1)
        throw new SaeError(
          this.spliced.length === 0
            ? 'no SAE is spliced into the model'
            : `${this.spliced.length} SAEs are spliced (${this.spliced.map((s) => `'${s.hookName}'`).join(', ')}): name the hook to remove`,
        );
      found = this.spliced[0];
    } else if (typeof which === 'string') {
      found =
        this.spliced.find((s) => s.hookName === which) ?? this.spliced.find((s) => s.inputHook === which);
    } else found = this.spliced.find((s) => s.sae === which);
    if (!found)
      throw new SaeError(
        `no spliced SAE at ${typeof which === 'string' ? `'${which}'` : 'that object'}` +
          (this.spliced.length ? ` (spliced: ${this.spliced.map((s) => `'${s.hookName}'`).join(', ')})` : ''),
      );
    this.spliced = this.spliced.filter((s) => s !== found);
    return found.sae;
  }

  /** Removes every spliced SAE. */
  resetSAEs(): void {
    this.spliced = [];
  }

  /**
   * The hook point of one forward pass through `forward(model.cfg, model.weights, ...)`: the plan's hooks
   * and caches at every hook point, with the spliced SAEs. Everything that runs the model goes through it.
   */
  hookPoint(plan: Partial<HookPlan> = {}): HookPoint {
    return makeSplicedHookPoint(
      { fwd: plan.fwd ?? [], bwd: plan.bwd ?? [], cache: plan.cache ?? null, store: plan.store ?? new Map() },
      this.spliced,
    );
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer)
      throw new ShapeError(`model ${this.source} has no tokenizer: pass token ids instead of text`);
    return this.tokenizer;
  }

  /** Text or ids to an int64 [batch, pos] tensor; a batch of texts is right-padded with a mask. */
  toTokens(input: ModelInput, opts: InputOptions = {}): Batch {
    if (input instanceof Tensor) {
      const t = input.rank === 1 ? new Tensor(input.data, [1, input.shape[0]!]) : input;
      if (t.dtype !== 'int64' && t.dtype !== 'int32')
        throw new ShapeError(`token tensor must be int32/int64, got ${t.dtype}`);
      return { tokens: toInt64(t), attentionMask: opts.attentionMask ?? null };
    }
    let rows: number[][];
    if (typeof input === 'string') rows = [this.encode(input, opts)];
    else if (input.length > 0 && typeof input[0] === 'string')
      rows = (input as string[]).map((s) => this.encode(s, opts));
    else if (input.length > 0 && Array.isArray(input[0])) rows = input as number[][];
    else rows = [input as number[]];
    if (rows.some((r) => r.length === 0))
      throw new ShapeError('empty input: nothing to run (give text or at least one token)');
    for (const r of rows) {
      for (const id of r) {
        if (!Number.isInteger(id) || id < 0 || id >= this.cfg.vocabSize) {
          throw new ShapeError(`token id ${id} is outside the vocabulary [0, ${this.cfg.vocabSize})`);
        }
      }
    }
    const P = Math.max(...rows.map((r) => r.length));
    const padded = rows.some((r) => r.length !== P);
    const pad = this.cfg.eosTokenId ?? 0;
    const ids = new BigInt64Array(rows.length * P);
    const mask = new BigInt64Array(rows.length * P);
    rows.forEach((r, b) => {
      for (let i = 0; i < P; i++) {
        ids[b * P + i] = BigInt(i < r.length ? r[i]! : pad);
        mask[b * P + i] = i < r.length ? 1n : 0n;
      }
    });
    return {
      tokens: new Tensor(ids, [rows.length, P]),
      attentionMask: opts.attentionMask ?? (padded ? new Tensor(mask, [rows.length, P]) : null),
    };
  }

  /**
   * Refuses, before anything runs, tokens [batch, pos] longer than the context (ShapeError) or whose
   * attention, with what the pass keeps, will not fit in memory (MemoryError).
   */
  private checkFits(tokens: Tensor, keep: AttentionKeep): void {
    const [B, P] = tokens.shape as [number, number];
    checkContext(this.cfg, P);
    checkAttentionMemory(this.cfg, B, P, 0, keep);
  }

  encode(text: string, opts: InputOptions = {}): number[] {
    return this.requireTokenizer().encode(text, { prependBos: opts.prependBos });
  }

  decode(ids: number[]): string {
    return this.requireTokenizer().decode(ids);
  }

  /** One display string per token. */
  tokenStrings(ids: number[]): string[] {
    const tok = this.tokenizer;
    return ids.map((id) => (tok ? tok.tokenString(id) : `<${id}>`));
  }

  /** Logits [batch, pos, vocab]. */
  run(input: ModelInput, opts: InputOptions = {}): Tensor {
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'none');
    if (!attentionMask) {
      const compiled = this.runCompiled('run', tokens, [], false);
      if (compiled) return compiled.logits;
    }
    const hook = this.spliced.length ? this.hookPoint() : undefined;
    return noGrad(() =>
      forward(this.cfg, this.weights, tokens, { hook, attentionMask: attentionMask ?? undefined }),
    );
  }

  /** Logits and the activations at the selected hook points. */
  runWithCache(input: ModelInput, opts: CacheOptions = {}): { logits: Tensor; cache: ActivationCache } {
    const all = this.hookNames({ useAttnResult: opts.useAttnResult });
    if (opts.names) validateSelectors(opts.names, all);
    const names = opts.names ? all.filter((n) => opts.names!.some((s) => matches(s, n))) : all;
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'cache');
    if (!attentionMask) {
      const compiled = this.runCompiled('cache', tokens, names, opts.useAttnResult ?? false);
      if (compiled) return { logits: compiled.logits, cache: new ActivationCache(compiled.cache) };
    }
    const store = new Map<string, Tensor>();
    const wanted = new Set(names);
    const hook = this.hookPoint({ cache: (n) => wanted.has(n), store });
    const logits = noGrad(() =>
      forward(this.cfg, this.weights, tokens, {
        hook,
        attentionMask: attentionMask ?? undefined,
        useAttnResult: opts.useAttnResult,
      }),
    );
    return { logits, cache: new ActivationCache(store) };
  }

  /**
   * Runs with forward hooks (which may return replacements) and backward hooks. With backward hooks,
   * the graph is recorded so that `loss.backward()` on a function of the result calls them.
   */
  runWithHooks(input: ModelInput, opts: HookOptions = {}): Tensor {
    const fwd = opts.fwd ?? [];
    const bwd = opts.bwd ?? [];
    const all = this.hookNames({ useAttnResult: opts.useAttnResult });
    validateSelectors([...fwd.map((h) => h.name), ...bwd.map((h) => h.name)], all);
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, bwd.length ? 'gradients' : 'none');
    const hook = this.hookPoint({ fwd, bwd });
    const options: ForwardOptions = {
      hook: bwd.length ? gradRoot(hook) : hook,
      attentionMask: attentionMask ?? undefined,
      useAttnResult: opts.useAttnResult,
      stopAtLayer: opts.stopAtLayer,
    };
    return bwd.length
      ? forward(this.cfg, this.weights, tokens, options)
      : noGrad(() => forward(this.cfg, this.weights, tokens, options));
  }

  /**
   * Gradients of a scalar loss with respect to activations (default loss: mean next-token
   * cross-entropy). Returns the loss, the logits and a cache of gradients keyed by hook name.
   */
  gradients(
    input: ModelInput,
    opts: InputOptions & {
      names?: HookSelector[];
      loss?: (logits: Tensor, tokens: Tensor) => Tensor;
      useAttnResult?: boolean;
    } = {},
  ): { loss: number; logits: Tensor; grads: ActivationCache; cache: ActivationCache } {
    const all = this.hookNames({ useAttnResult: opts.useAttnResult });
    if (opts.names) validateSelectors(opts.names, all);
    const names = opts.names ? all.filter((n) => opts.names!.some((s) => matches(s, n))) : all;
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'gradients');
    if (!opts.loss && !attentionMask) {
      const out = this.compiled(`grad|${opts.useAttnResult ?? false}|${names.join(',')}`, tokens, (t) => {
        const r = this.eagerGradients(t, null, names, undefined, opts.useAttnResult);
        return [r.loss, r.logits, ...names.map((n) => r.grads.get(n)!), ...names.map((n) => r.acts.get(n)!)];
      });
      if (out) {
        const n = names.length;
        return {
          loss: out[0]!.item(),
          logits: out[1]!,
          grads: new ActivationCache(new Map(names.map((name, i) => [name, out[2 + i]!] as const))),
          cache: new ActivationCache(new Map(names.map((name, i) => [name, out[2 + n + i]!] as const))),
        };
      }
    }
    const r = this.eagerGradients(tokens, attentionMask, names, opts.loss, opts.useAttnResult);
    return {
      loss: r.loss.item(),
      logits: r.logits,
      grads: new ActivationCache(r.grads),
      cache: new ActivationCache(r.acts),
    };
  }

  private eagerGradients(
    tokens: Tensor,
    attentionMask: Tensor | null,
    names: string[],
    lossFn: ((logits: Tensor, tokens: Tensor) => Tensor) | undefined,
    useAttnResult: boolean | undefined,
  ): { loss: Tensor; logits: Tensor; grads: Map<string, Tensor>; acts: Map<string, Tensor> } {
    const grads = new Map<string, Tensor>();
    const acts = new Map<string, Tensor>();
    const bwd: BackwardHook[] = names.map((name) => ({ name, fn: (g) => void grads.set(name, g) }));
    const wanted = new Set(names);
    const hook = this.hookPoint({ bwd, cache: (n) => wanted.has(n), store: acts });
    const logits = forward(this.cfg, this.weights, tokens, {
      hook: gradRoot(hook),
      attentionMask: attentionMask ?? undefined,
      useAttnResult,
    });
    const loss = (lossFn ?? nextTokenLoss)(logits, tokens);
    if (loss.size !== 1)
      throw new ShapeError(`gradients(): the loss must be a scalar, got shape [${loss.shape}]`);
    loss.backward();
    return {
      loss: loss.detach(),
      logits: logits.detach(),
      grads,
      acts: new Map([...acts].map(([k, v]) => [k, v.detach()])),
    };
  }

  /** Samples a continuation with a KV cache; hooks apply at every step. Temperature 0 is greedy. */
  generate(prompt: string | number[], opts: GenerateOptions = {}): GenerateResult {
    return generate(this, prompt, opts);
  }

  /** Mean next-token cross-entropy (nats) over the input. */
  loss(input: ModelInput, opts: InputOptions = {}): number {
    const { tokens } = this.toTokens(input, opts);
    if (tokens.shape[1]! < 2) throw new ShapeError('loss needs at least two tokens');
    return nextTokenLoss(this.run(tokens, opts), tokens).item();
  }

  /** Hook-free forward with cache outputs, compiled; null when the eager path should run. */
  private runCompiled(
    kind: string,
    tokens: Tensor,
    names: string[],
    useAttnResult: boolean,
  ): { logits: Tensor; cache: Map<string, Tensor> } | null {
    const wanted = new Set(names);
    const out = this.compiled(`${kind}|${useAttnResult}|${names.join(',')}`, tokens, (t) =>
      noGrad(() => {
        const store = new Map<string, Tensor>();
        const hook = this.hookPoint({ cache: (n) => wanted.has(n), store });
        const logits = forward(this.cfg, this.weights, t, { hook, useAttnResult });
        return [logits, ...names.map((n) => store.get(n)!)];
      }),
    );
    if (!out) return null;
    return { logits: out[0]!, cache: new Map(names.map((n, i) => [n, out[i + 1]!] as const)) };
  }

  /**
   * Runs `build` as one traced ONNX graph once the same key and token shape repeat (or always).
   * `build` must be a pure function of the tokens and the weights: no reads of tensor values.
   */
  private compiled(key: string, tokens: Tensor, build: (tokens: Tensor) => Tensor[]): Tensor[] | null {
    if (this.compileMode === 'never') return null;
    // The spliced SAEs are part of the graph: their identities in the key, their parameters compared.
    const fullKey = `${key}|${tokens.dtype}${tokens.shape}|saes:${spliceKey(this.spliced)}`;
    const weights = [...this.weights.values(), ...spliceTensors(this.spliced)];
    let entry = this.traced.get(fullKey);
    if (
      entry &&
      (entry.weights.length !== weights.length || entry.weights.some((t, i) => t !== weights[i]))
    ) {
      entry = undefined; // weights (or SAE parameters) were replaced: trace again
    }
    if (!entry) {
      entry = { fn: null, seen: 0, weights };
      this.traced.set(fullKey, entry);
    }
    entry.seen++;
    // Most recently used last, so eviction drops the oldest graph (a small model's holds a copy of the weights).
    this.traced.delete(fullKey);
    this.traced.set(fullKey, entry);
    if (entry.fn) return entry.fn.run([tokens]);
    if (this.compileMode === 'auto' && entry.seen < 2) return null;
    const { fn, outputs } = TracedFunction.trace(([t]) => build(t!), [tokens], {
      inlineLimit: compiledInlineLimit(this.weightsBytes()),
    });
    entry.fn = fn;
    const compiledEntries = [...this.traced.entries()].filter(([, e]) => e.fn);
    for (const [k, e] of compiledEntries.slice(
      0,
      Math.max(0, compiledEntries.length - MAX_COMPILED_GRAPHS),
    )) {
      e.fn!.dispose();
      this.traced.delete(k);
    }
    return outputs;
  }

  /** Bytes of float32 weights (with spliced SAEs' parameters): what decides how graphs take them. */
  private weightsBytes(): number {
    let n = 0;
    for (const t of this.weights.values()) n += t.size * 4;
    for (const t of spliceTensors(this.spliced)) n += t.size * 4;
    return n;
  }

  /** Drops compiled graphs; call after changing weight values in place (replacing tensors is detected). */
  invalidateCompiled(): void {
    for (const e of this.traced.values()) e.fn?.dispose();
    this.traced.clear();
  }
}

/** Makes the embeddings differentiable leaves so every later activation carries a gradient. */
function gradRoot(hook: (name: string, x: Tensor) => Tensor): (name: string, x: Tensor) => Tensor {
  return (name, x) => {
    if (name === 'hook_embed' || name === 'hook_pos_embed') {
      if (!x.requiresGrad) x = x.detach().requireGrad();
    }
    return hook(name, x);
  };
}

export function nextTokenLoss(logits: Tensor, tokens: Tensor): Tensor {
  const P = tokens.shape[1]!;
  if (P < 2) throw new HookError('next-token loss needs at least two positions');
  return crossEntropy(slice(logits, 1, 0, P - 1), slice(tokens, 1, 1, P));
}

function toInt64(t: Tensor): Tensor {
  if (t.dtype === 'int64') return t;
  return new Tensor(
    BigInt64Array.from(t.data as Int32Array, (v) => BigInt(v)),
    t.shape,
  );
}
