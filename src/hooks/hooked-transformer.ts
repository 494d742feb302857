import { HookError, SaeError, ShapeError, UsageError } from '../errors.js';
import { crossEntropy } from '../engine/ops/nn.js';
import { cast, reshape, slice } from '../engine/ops/shape.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import { getBackend } from '../engine/backend/backend.js';
import { computeTogether, lazily } from '../engine/lazy.js';
import { resolveModel } from '../io/hub/resolve-model.js';
import type { HubOptions } from '../io/hub/download.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { ModelConfig } from '../models/config.js';
import { headWeights } from '../models/head-weights.js';
import { checkAttentionMemory, checkContext, type AttentionKeep } from '../models/context.js';
import { runScoped } from './scoped.js';
import { hookNames } from '../models/hook-table.js';
import { defaultModelDir, loadModelDir, type ModelDirOptions } from '../models/load.js';
import { compiledInlineLimit, MAX_COMPILED_GRAPHS } from '../models/memory.js';
import { processWeights, type ProcessOptions } from '../models/process-weights.js';
import type { ForwardOptions } from '../models/transformer.js';
import type { Weights } from '../models/weights.js';
import type { HookPoint } from '../models/hook-point.js';
import {
  makeSplicedHookPoint,
  spliceKey,
  spliceTensors,
  splicedHookNames,
  type Splice,
  type Spliceable,
} from './splice.js';
import { ActivationCache } from './cache.js';
import { generate, type GenerateOptions, type GenerateResult } from './generate.js';
import { runModel } from './run-model.js';
import {
  matches,
  toHooks,
  validateSelectors,
  type BackwardHook,
  type BackwardHookFn,
  type ForwardHook,
  type ForwardHookFn,
  type HookPlan,
  type HookSelector,
  type HookSpec,
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
  /** Hook names or filters to keep, or one of them (TransformerLens's names_filter); all when omitted. */
  names?: HookSelector | HookSelector[];
  useAttnResult?: boolean;
}

/** Forward and backward hooks, each `{ name, fn }` or TransformerLens's `[name, fn]`. */
export interface Hooks {
  fwd?: HookSpec<ForwardHookFn>[];
  bwd?: HookSpec<BackwardHookFn>[];
}

export interface HookOptions extends InputOptions, Hooks {
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
  private spliced: Splice[] = [];
  /** Hooks kept on every forward pass (addHook), until resetHooks(). */
  private persistent: { fwd: ForwardHook[]; bwd: BackwardHook[] } = { fwd: [], bwd: [] };

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

  /** The SAEs and transcoders (any splices) in every forward pass, in the order they were added. */
  get saes(): readonly Splice[] {
    return Object.freeze([...this.spliced]);
  }

  /**
   * Splices an SAE (or transcoder) into every forward pass of the model (SAELens's add_sae): the
   * activation at its hook (cfg.hookNameOut for a transcoder) is replaced by the SAE's output, and its
   * internal points become hook points `H.hook_sae_input`, `H.hook_sae_acts_pre`, `H.hook_sae_acts_post`,
   * `H.hook_sae_recons`, `H.hook_sae_error` (with the error term) and `H.hook_sae_output`. Throws SaeError
   * when the hook is not in the model, the widths do not match, or the hook already has an SAE.
   */
  addSAE<O extends object>(sae: Spliceable<O>, opts?: O): this {
    this.spliced = [...this.spliced, sae.splice(this, this.spliced, opts)];
    return this;
  }

  /**
   * Removes the SAE replacing `which` (a hook name: the hook it replaces or, for a transcoder, the one it
   * reads), or that SAE object; without an argument, the only spliced SAE. Returns it.
   */
  removeSAE(which?: string | Spliceable): Spliceable {
    let found: Splice | undefined;
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
    } else found = this.spliced.find((s) => s.source === which);
    if (!found)
      throw new SaeError(
        `no spliced SAE at ${typeof which === 'string' ? `'${which}'` : 'that object'}` +
          (this.spliced.length ? ` (spliced: ${this.spliced.map((s) => `'${s.hookName}'`).join(', ')})` : ''),
      );
    this.spliced = this.spliced.filter((s) => s !== found);
    return found.source;
  }

  /** Removes every spliced SAE. */
  resetSAEs(): void {
    this.spliced = [];
  }

  /**
   * The hook point of one forward pass through runModel (src/hooks/run-model.ts): the plan's hooks
   * and caches at every hook point, with the spliced SAEs. Everything that runs the model goes through it.
   */
  hookPoint(plan: Partial<HookPlan> = {}, recordsGrad = (plan.bwd?.length ?? 0) > 0): HookPoint {
    const bwd = plan.bwd ?? [];
    return makeSplicedHookPoint(
      {
        fwd: [...this.persistent.fwd, ...(plan.fwd ?? [])],
        // Persistent backward hooks join the passes that record gradients.
        bwd: recordsGrad ? [...this.persistent.bwd, ...bwd] : bwd,
        cache: plan.cache ?? null,
        store: plan.store ?? new Map(),
      },
      this.spliced,
    );
  }

  /** Whether a forward pass must go through hookPoint(): SAEs are spliced or hooks were added. */
  get hooked(): boolean {
    return this.spliced.length > 0 || this.persistent.fwd.length > 0 || this.persistent.bwd.length > 0;
  }

  /**
   * TransformerLens's add_hook: a hook kept on every forward pass (run, runWithCache, runWithHooks,
   * gradients, generate) until resetHooks(). A backward hook ('bwd') runs in the passes that record
   * gradients: gradients(), and runWithHooks, which then records the graph.
   */
  addHook(name: HookSelector, fn: ForwardHookFn | BackwardHookFn, dir: 'fwd' | 'bwd' = 'fwd'): this {
    if (dir !== 'fwd' && dir !== 'bwd')
      throw new HookError(`addHook: dir must be 'fwd' or 'bwd', got '${String(dir)}'`);
    const [h] = toHooks([[name, fn]], dir);
    validateSelectors([h!.name], this.hookNames({ useAttnResult: true }));
    if (dir === 'fwd') this.persistent.fwd.push(h as ForwardHook);
    else this.persistent.bwd.push(h as BackwardHook);
    return this;
  }

  /** Removes every hook added with addHook (TransformerLens's reset_hooks). Spliced SAEs stay. */
  resetHooks(): void {
    this.persistent = { fwd: [], bwd: [] };
  }

  /**
   * Runs `fn` with these hooks added, and removes them afterwards, also when it throws or its promise
   * rejects (TransformerLens's `with model.hooks(...)`).
   */
  withHooks<T>(hooks: Hooks, fn: (model: this) => T): T {
    const fwd = toHooks(hooks.fwd, 'fwd');
    const bwd = toHooks(hooks.bwd, 'bwd');
    validateSelectors(
      [...fwd, ...bwd].map((h) => h.name),
      this.hookNames({ useAttnResult: true }),
    );
    const before = this.persistent;
    this.persistent = { fwd: [...before.fwd, ...fwd], bwd: [...before.bwd, ...bwd] };
    return runScoped(
      () => fn(this),
      () => void (this.persistent = before),
    );
  }

  /**
   * Whether a pass needs the per-head attention outputs: asked for, or a hook or cache name (or a
   * persistent hook) names blocks.L.attn.hook_result, which then just works.
   */
  usesAttnResult(asked: boolean | undefined, selectors: readonly HookSelector[]): boolean {
    if (asked !== undefined) return asked;
    const all = [
      ...selectors,
      ...this.persistent.fwd.map((h) => h.name),
      ...this.persistent.bwd.map((h) => h.name),
    ];
    return all.some((s) => typeof s === 'string' && s.endsWith('.attn.hook_result'));
  }

  /** TransformerLens's per-head W_Q: [n_layers, n_heads, d_model, d_head]. */
  get W_Q(): Tensor {
    return headWeights(this.cfg, this.weights, 'W_Q');
  }

  /** [n_layers, n_heads, d_model, d_head]; under GQA each kv head repeats for its query group. */
  get W_K(): Tensor {
    return headWeights(this.cfg, this.weights, 'W_K');
  }

  /** [n_layers, n_heads, d_model, d_head]; under GQA each kv head repeats for its query group. */
  get W_V(): Tensor {
    return headWeights(this.cfg, this.weights, 'W_V');
  }

  /** [n_layers, n_heads, d_head, d_model]. */
  get W_O(): Tensor {
    return headWeights(this.cfg, this.weights, 'W_O');
  }

  /** The token embedding [d_vocab, d_model]. */
  get W_E(): Tensor {
    return this.weights.get('embed.W_E')!;
  }

  /** The unembedding [d_model, d_vocab]. */
  get W_U(): Tensor {
    return this.weights.get('unembed.W_U')!;
  }

  private requireTokenizer(): Tokenizer {
    if (!this.tokenizer)
      throw new ShapeError(`model ${this.source} has no tokenizer: pass token ids instead of text`);
    return this.tokenizer;
  }

  /** Text or ids to an int64 [batch, pos] tensor; a batch of texts is right-padded with a mask. */
  toTokens(input: ModelInput, opts: InputOptions = {}): Batch {
    if (!(typeof input === 'string' || Array.isArray(input) || input instanceof Tensor))
      throw new ShapeError(
        `model input must be text, an array of texts, token ids (number[] or number[][]) or an int tensor ` +
          `[batch, pos]; got ${input === null ? 'null' : typeof input}`,
      );
    if (input instanceof Tensor) {
      const t = input.rank === 1 ? reshape(input, [1, input.shape[0]!]) : input;
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

  /** One display string per token; text is tokenized first (BOS as `opts.prependBos` or the tokenizer). */
  tokenStrings(input: string | number[], opts: InputOptions = {}): string[] {
    const ids = typeof input === 'string' ? this.encode(input, opts) : input;
    const tok = this.tokenizer;
    return ids.map((id) => (tok ? tok.tokenString(id) : `<${id}>`));
  }

  /** TransformerLens's to_str_tokens: text (or ids) as one display string per token. */
  toStrTokens(input: string | number[], opts: InputOptions = {}): string[] {
    return this.tokenStrings(input, opts);
  }

  /**
   * TransformerLens's to_single_token: a token id, or text that is exactly one token. Text is encoded
   * without BOS; when that is not one token, text equal to one token's own string is accepted too (so
   * " Lily" names the token ' Lily' of a sentencepiece tokenizer, whose dummy prefix would otherwise add
   * a separate ' ' token). Anything else is a UsageError that says how many tokens it became and lists
   * them; `label` names the argument in messages (e.g. '--answer').
   */
  toSingleToken(token: number | string, label = 'token'): number {
    const V = this.cfg.vocabSize;
    if (typeof token === 'number') {
      if (!Number.isInteger(token) || token < 0 || token >= V)
        throw new UsageError(`${label}: token id ${token} is outside the vocabulary [0, ${V})`);
      return token;
    }
    if (typeof token !== 'string')
      throw new UsageError(
        `${label}: expected a token id or text, got ${token === null ? 'null' : typeof token}`,
      );
    if (!this.tokenizer)
      throw new UsageError(
        `${label}: model ${this.source} has no tokenizer: give the token id instead of text`,
      );
    if (token.length === 0) throw new UsageError(`${label}: empty text is not a token`);
    const ids = this.encode(token, { prependBos: false });
    if (ids.length === 1) return ids[0]!;
    for (let id = 0; id < V; id++) if (this.tokenizer.tokenString(id) === token) return id;
    const strings = this.tokenStrings(ids);
    const listed = ids.map((id, i) => `${JSON.stringify(strings[i])} (${id})`).join(', ');
    throw new UsageError(
      `${label} ${JSON.stringify(token)} is ${ids.length} tokens, not one: ${listed}` +
        ` (give a single token, or its id)`,
    );
  }

  /** Logits [batch, pos, vocab]. */
  run(input: ModelInput, opts: InputOptions = {}): Tensor {
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'none');
    if (!attentionMask) {
      const compiled = this.runCompiled('run', tokens, [], false);
      if (compiled) return compiled.logits;
    }
    const useAttnResult = this.usesAttnResult(undefined, []);
    // runModel adds the added hooks and splices when there are any.
    return noGrad(() =>
      runModel(this, tokens, {
        attentionMask: attentionMask ?? undefined,
        useAttnResult,
      }),
    );
  }

  /** Logits and the activations at the selected hook points. */
  runWithCache(input: ModelInput, opts: CacheOptions = {}): { logits: Tensor; cache: ActivationCache } {
    const selected = selectorList(opts.names);
    const useAttnResult = this.usesAttnResult(opts.useAttnResult, selected ?? []);
    opts = { ...opts, useAttnResult };
    const all = this.hookNames({ useAttnResult });
    if (selected) validateSelectors(selected, all);
    const names = selected ? all.filter((n) => selected.some((s) => matches(s, n))) : all;
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'cache');
    if (!attentionMask) {
      const compiled = this.runCompiled('cache', tokens, names, opts.useAttnResult ?? false);
      if (compiled) return { logits: compiled.logits, cache: new ActivationCache(compiled.cache, this) };
    }
    const store = new Map<string, Tensor>();
    const wanted = new Set(names);
    const hook = this.hookPoint({ cache: (n) => wanted.has(n), store });
    const logits = noGrad(() =>
      runModel(this, tokens, {
        hook,
        attentionMask: attentionMask ?? undefined,
        useAttnResult: opts.useAttnResult,
      }),
    );
    computeTogether([logits, ...store.values()]);
    return { logits, cache: new ActivationCache(store, this) };
  }

  /**
   * Runs with forward hooks (which may return replacements) and backward hooks. With backward hooks,
   * the graph is recorded so that `loss.backward()` on a function of the result calls them.
   */
  runWithHooks(input: ModelInput, opts: HookOptions = {}): Tensor {
    const fwd = toHooks(opts.fwd, 'fwd');
    const bwd = toHooks(opts.bwd, 'bwd');
    const selectors = [...fwd.map((h) => h.name), ...bwd.map((h) => h.name)];
    const useAttnResult = this.usesAttnResult(opts.useAttnResult, selectors);
    validateSelectors(selectors, this.hookNames({ useAttnResult }));
    const { tokens, attentionMask } = this.toTokens(input, opts);
    const grad = bwd.length > 0 || this.persistent.bwd.length > 0;
    this.checkFits(tokens, grad ? 'gradients' : 'none');
    const hook = this.hookPoint({ fwd, bwd }, grad);
    const options: ForwardOptions = {
      hook: grad ? gradRoot(hook) : hook,
      attentionMask: attentionMask ?? undefined,
      useAttnResult,
      stopAtLayer: opts.stopAtLayer,
    };
    if (grad) return runModel(this, tokens, options);
    const run = () => noGrad(() => runModel(this, tokens, options));
    // Hooks written as tensor expressions join the forward's graph: recorded lazily, the whole
    // hooked forward runs as one compiled graph (from the second call of the same structure on),
    // with the hooks' tensors (positions, vectors, cached activations) fed as inputs.
    return this.compileMode === 'never' ? run() : lazily(run);
  }

  /**
   * Gradients of a scalar loss with respect to activations (default loss: mean next-token
   * cross-entropy). Returns the loss, the logits and a cache of gradients keyed by hook name.
   */
  gradients(
    input: ModelInput,
    opts: InputOptions & {
      names?: HookSelector | HookSelector[];
      loss?: (logits: Tensor, tokens: Tensor) => Tensor;
      useAttnResult?: boolean;
      /** Forward hooks applied in this pass; gradients flow through what they return. */
      fwd?: Hooks['fwd'];
    } = {},
  ): { loss: Tensor; logits: Tensor; grads: ActivationCache; cache: ActivationCache } {
    const selected = selectorList(opts.names);
    const fwd = toHooks(opts.fwd, 'fwd');
    const hookSelectors = [...(selected ?? []), ...fwd.map((h) => h.name)];
    opts = { ...opts, useAttnResult: this.usesAttnResult(opts.useAttnResult, hookSelectors) };
    const all = this.hookNames({ useAttnResult: opts.useAttnResult });
    validateSelectors(hookSelectors, all);
    const names = selected ? all.filter((n) => selected.some((s) => matches(s, n))) : all;
    const { tokens, attentionMask } = this.toTokens(input, opts);
    this.checkFits(tokens, 'gradients');
    if (!opts.loss && !attentionMask && fwd.length === 0) {
      const out = this.compiled(`grad|${opts.useAttnResult ?? false}|${names.join(',')}`, tokens, (t) => {
        const r = this.eagerGradients(t, null, names, undefined, opts.useAttnResult);
        return [r.loss, r.logits, ...names.map((n) => r.grads.get(n)!), ...names.map((n) => r.acts.get(n)!)];
      });
      if (out) {
        const n = names.length;
        return {
          loss: out[0]!,
          logits: out[1]!,
          grads: new ActivationCache(new Map(names.map((name, i) => [name, out[2 + i]!] as const)), this),
          cache: new ActivationCache(new Map(names.map((name, i) => [name, out[2 + n + i]!] as const)), this),
        };
      }
    }
    const r = this.eagerGradients(tokens, attentionMask, names, opts.loss, opts.useAttnResult, fwd);
    return {
      loss: r.loss,
      logits: r.logits,
      grads: new ActivationCache(r.grads, this),
      cache: new ActivationCache(r.acts, this),
    };
  }

  private eagerGradients(
    tokens: Tensor,
    attentionMask: Tensor | null,
    names: string[],
    lossFn: ((logits: Tensor, tokens: Tensor) => Tensor) | undefined,
    useAttnResult: boolean | undefined,
    fwd: ForwardHook[] = [],
  ): { loss: Tensor; logits: Tensor; grads: Map<string, Tensor>; acts: Map<string, Tensor> } {
    const grads = new Map<string, Tensor>();
    const acts = new Map<string, Tensor>();
    const bwd: BackwardHook[] = names.map((name) => ({ name, fn: (g) => void grads.set(name, g) }));
    const wanted = new Set(names);
    const hook = this.hookPoint({ fwd, bwd, cache: (n) => wanted.has(n), store: acts }, true);
    const logits = runModel(this, tokens, {
      hook: gradRoot(hook),
      attentionMask: attentionMask ?? undefined,
      useAttnResult,
    });
    const loss = (lossFn ?? nextTokenLoss)(logits, tokens);
    if (loss.size !== 1)
      throw new ShapeError(`gradients(): the loss must be a scalar, got shape [${loss.shape}]`);
    loss.backward();
    computeTogether([loss, logits, ...grads.values(), ...acts.values()]);
    return {
      loss: loss.detach(),
      logits: logits.detach(),
      grads,
      acts: new Map([...acts].map(([k, v]) => [k, v.detach()])),
    };
  }

  /** Samples a continuation with a KV cache; hooks apply at every step. Temperature 0 is greedy. */
  generate(prompt: string | number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
    return generate(this, prompt, opts);
  }

  /** Mean next-token cross-entropy (nats) over the input (read from the engine: awaited). */
  async loss(input: ModelInput, opts: InputOptions = {}): Promise<number> {
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
        const logits = runModel(this, t, { hook, useAttnResult });
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
    // Added hooks may read values and are not part of the key: they run eagerly. An asynchronous
    // backend is lazy everywhere: the "eager" path records one graph, compiled when read.
    if (
      this.compileMode === 'never' ||
      this.persistent.fwd.length ||
      this.persistent.bwd.length ||
      !getBackend().synchronous
    )
      return null;
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

/** `names` as a list: one selector or several; anything else is a HookError. */
function selectorList(names: HookSelector | HookSelector[] | undefined): HookSelector[] | undefined {
  if (names === undefined) return undefined;
  const list = Array.isArray(names) ? names : [names];
  for (const s of list)
    if (typeof s !== 'string' && typeof s !== 'function')
      throw new HookError(
        `names: expected hook names or name filters (functions), got ${s === null ? 'null' : typeof s}`,
      );
  return list;
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
  return cast(t, 'int64');
}
