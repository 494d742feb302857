// One latent's dashboard (SAE-Vis / SAEDashboard panels) from a feature store, and from the SAE and model
// when they are at hand (its logit effects): what `sonde sae show` prints and the explorer's feature page
// draws.
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type {
  ActivationHistogram,
  CorrelatedFeature,
  DensityHistogram,
  FeatureContext,
  FeatureStore,
  FeatureStoreInfo,
  FeatureSummary,
  QuantileGroup,
} from './feature-store.js';
import { featureLogits, featureLogitsUnavailable, type FeatureLogits } from './features.js';
import type { SparseAutoencoder } from './sae.js';

export interface DashboardOptions {
  /** Top-activating contexts (default 10) and tokens either side of each (default 8). */
  contexts?: number;
  window?: number;
  /** Bins of the activation, logit-effect and density histograms (default 20). */
  bins?: number;
  /** Top and bottom logit tokens (default 10). */
  topK?: number;
  /** Activation intervals and examples per interval (default 5 and 5). */
  quantileGroups?: number;
  perGroup?: number;
  /** Correlated latents listed (default 10). */
  correlated?: number;
}

export interface FeatureDashboard {
  feature: number;
  meta: FeatureStoreInfo;
  summary: FeatureSummary;
  contexts: FeatureContext[];
  quantiles: QuantileGroup[];
  histogram: ActivationHistogram;
  logits: FeatureLogits | null;
  /** Why there are no logits (null when there are). */
  logitsUnavailable: string | null;
  correlated: CorrelatedFeature[];
  /** log10 density of every live latent: where this one sits among them. */
  density: DensityHistogram;
}

/**
 * The panels of latent `feature`; `source` is the SAE and model the store was made with (null when they
 * are not at hand: no logits).
 */
export async function featureDashboard(
  store: FeatureStore,
  source: { model: HookedTransformer; sae: SparseAutoencoder } | null,
  feature: number,
  opts: DashboardOptions = {},
): Promise<FeatureDashboard> {
  const window = opts.window ?? 8;
  const bins = opts.bins ?? 20;
  // One store connection: the queries run one after another.
  const summary = await store.featureSummary(feature, 10);
  const contexts = await store.topContexts(feature, opts.contexts ?? 10, window);
  const quantiles = await store.quantileContexts(
    feature,
    opts.quantileGroups ?? 5,
    opts.perGroup ?? 5,
    window,
  );
  const histogram = await store.histogram(feature, bins);
  const correlated = await store.correlatedFeatures(feature, opts.correlated ?? 10);
  const density = await store.densityHistogram(bins);
  let logits: FeatureLogits | null = null;
  let logitsUnavailable: string | null;
  if (source) {
    logitsUnavailable = featureLogitsUnavailable(source.model, source.sae);
    logits = await featureLogits(source.model, source.sae, feature, opts.topK ?? 10, bins);
  } else logitsUnavailable = `the SAE at ${store.info.sae} is not available (give --sae DIR)`;
  return {
    feature,
    meta: store.info,
    summary,
    contexts,
    quantiles,
    histogram,
    logits,
    logitsUnavailable,
    correlated,
    density,
  };
}
