// SAE feature pages (SAEDashboard's panels), "test your own text", feature search by text, steering with
// a latent, and the corpus scan that fills an SAE's feature store (a job).
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { featureDashboard } from '../../sae/dashboard.js';
import {
  DEFAULT_SCAN_CTX,
  DEFAULT_SCAN_TOKENS,
  featureStorePath,
  openOrScanStore,
  openScanOf,
} from '../../sae/feature-scan.js';
import type { FeatureStore } from '../../sae/feature-store.js';
import { featureSteering, searchFeatures, textActivations } from '../../sae/text-features.js';
import type { ServerContext } from '../app.js';
import { ApiError } from '../errors.js';
import { jobKind } from '../jobs/kind.js';
import type { OpenSae, Registry } from '../registry.js';
import { LIMITS, modelId, parse, prompt } from '../validate.js';

const saeId = z.string().min(1, 'sae is empty').max(200);
const feature = z.coerce.number().int('feature must be an integer').min(0, 'feature must be >= 0');
const count = (max: number, fallback: number) => z.coerce.number().int().min(0).max(max).default(fallback);

export const SaeStoreRequest = z.object({ sae: saeId });

export const SaeFeatureRequest = z.object({
  sae: saeId,
  feature,
  contexts: count(LIMITS.saeContexts, 10),
  window: count(LIMITS.saeWindow, 8),
  bins: count(100, 20).refine((n) => n >= 1, 'bins must be at least 1'),
  topK: count(LIMITS.topK, 10),
  quantileGroups: count(10, 5),
  perGroup: count(10, 5),
  correlated: count(LIMITS.topK, 10),
});

export const SaeActivationsRequest = z.object({
  sae: saeId,
  prompt,
  feature: feature.optional(),
  k: count(LIMITS.topK, 5),
});

export const SaeSearchRequest = z.object({ sae: saeId, prompt, k: count(LIMITS.features, 20) });

export const SaeSteerRequest = z.object({
  sae: saeId,
  feature,
  coefficient: z.number().finite().min(-1000).max(1000),
  prompt,
  maxTokens: z.number().int().min(1).max(LIMITS.generateTokens).default(40),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(0),
  temperature: z.number().min(0).max(10).default(1),
});

export const SaeScanParams = z.object({
  sae: saeId,
  model: modelId,
  nTokens: z.number().int().min(1).max(LIMITS.scanTokens).default(DEFAULT_SCAN_TOKENS),
  ctx: z.number().int().min(2).max(4096).default(DEFAULT_SCAN_CTX),
  rescan: z.boolean().default(false),
});

/** The SAE and the model it reads; a 400 naming the range when `f` is not one of its latents. */
function saeAndModel(registry: Registry, id: string, f?: number): OpenSae & { model: HookedTransformer } {
  const s = registry.sae(id);
  const width = s.sae.cfg.dSae;
  if (f !== undefined && f >= width)
    throw new ApiError(400, `feature ${f} is outside SAE '${id}''s ${width} latents (0..${width - 1})`);
  return { ...s, model: registry.model(s.modelId).model };
}

/** One open feature store per SAE, reopened when its file changes (a scan replaced it). */
class StoreCache {
  private readonly open = new Map<string, { key: string; store: FeatureStore | null; why: string | null }>();
  /** Queries on one DuckDB connection run one after another. */
  private chain: Promise<unknown> = Promise.resolve();

  use<T>(s: OpenSae & { model: HookedTransformer }, fn: (store: FeatureStore) => Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      const store = await this.get(s);
      return fn(store);
    });
    this.chain = run.catch(() => {});
    return run;
  }

  /** The store's status without failing when there is none. */
  status(s: OpenSae & { model: HookedTransformer }) {
    const run = this.chain.then(async () => {
      await this.get(s).catch(() => null);
      const e = this.open.get(s.id)!;
      return { info: e.store?.info ?? null, why: e.why };
    });
    this.chain = run.catch(() => {});
    return run;
  }

  private async get(s: OpenSae & { model: HookedTransformer }): Promise<FeatureStore> {
    const dbPath = featureStorePath(s.dir);
    const st = fs.statSync(dbPath, { throwIfNoEntry: false });
    const key = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : 'none';
    let e = this.open.get(s.id);
    if (!e || e.key !== key) {
      e?.store?.close();
      const { store, why } = await openScanOf(s.model, s.sae, dbPath);
      e = { key, store, why };
      this.open.set(s.id, e);
    }
    if (!e.store)
      throw new ApiError(
        409,
        `SAE '${s.id}' has no feature scan yet (${e.why}): run a scan (the Scan button, or sonde sae features --sae ${s.dir})`,
      );
    return e.store;
  }

  close(): void {
    for (const e of this.open.values()) e.store?.close();
    this.open.clear();
  }
}

export const saeJobs = {
  'sae-scan': jobKind(SaeScanParams, async (ctx, p) => {
    const model = ctx.model(p.model);
    const sae = ctx.sae(p.sae);
    const dir = ctx.saeDir(p.sae);
    const { store, reused, seconds } = await openOrScanStore(model, sae, {
      dbPath: featureStorePath(dir),
      saeDir: dir,
      nTokens: p.nTokens,
      ctx: p.ctx,
      rescan: p.rescan,
      onProgress: (q) => ctx.progress({ done: q.tokens, total: q.totalTokens, stage: 'scanning tokens' }),
    });
    const info = store.info;
    store.close();
    return { sae: p.sae, reused, seconds, info };
  }),
};

export function registerSaeRoutes(app: FastifyInstance, { registry }: ServerContext): void {
  const stores = new StoreCache();
  app.addHook('onClose', async () => stores.close());

  app.post('/api/sae/store', async (req) => {
    const p = parse(SaeStoreRequest, req.body);
    const s = saeAndModel(registry, p.sae);
    return {
      sae: s.id,
      dbPath: featureStorePath(s.dir),
      ...(await stores.status(s)),
      defaults: { nTokens: DEFAULT_SCAN_TOKENS, ctx: DEFAULT_SCAN_CTX, maxTokens: LIMITS.scanTokens },
    };
  });

  const feature = async (body: unknown) => {
    const p = parse(SaeFeatureRequest, body);
    const s = saeAndModel(registry, p.sae, p.feature);
    const d = await stores.use(s, (store) =>
      featureDashboard(store, { model: s.model, sae: s.sae }, p.feature, p),
    );
    return { sae: s.id, dSae: s.sae.cfg.dSae, ...d };
  };
  app.get('/api/sae/feature', async (req) => feature(req.query));
  app.post('/api/sae/feature', async (req) => feature(req.body));

  app.post('/api/sae/activations', async (req) => {
    const p = parse(SaeActivationsRequest, req.body);
    const s = saeAndModel(registry, p.sae, p.feature);
    return {
      sae: s.id,
      ...(await textActivations(s.model, s.sae, p.prompt, { feature: p.feature, k: p.k })),
    };
  });

  app.post('/api/sae/search', async (req) => {
    const p = parse(SaeSearchRequest, req.body);
    const s = saeAndModel(registry, p.sae);
    return { sae: s.id, ...(await searchFeatures(s.model, s.sae, p.prompt, p.k)) };
  });

  app.post('/api/sae/steer', async (req) => {
    const p = parse(SaeSteerRequest, req.body);
    const s = saeAndModel(registry, p.sae, p.feature);
    return {
      sae: s.id,
      prompt: p.prompt,
      ...(await featureSteering(s.model, s.sae, p.feature, p.prompt, p)),
    };
  });
}
