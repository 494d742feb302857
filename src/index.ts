// Sonde's public API (Node). Importing it registers the onnxruntime-node backend.
import './engine/node.js';

export * from './engine/index.js';
export { TracedFunction } from './engine/trace.js';
export { SONDE_GLIBC_TUNABLES, rerunWithTunedMalloc } from './engine/backend/malloc.js';
export * from './errors.js';
export { SafetensorsFile, SafetensorsCheckpoint, writeSafetensors } from './io/safetensors.js';
export { loadTokenizer, type Tokenizer, type EncodeOptions } from './io/tokenizer.js';
export type { ModelConfig } from './models/config.js';
export {
  forward,
  emptyKVCache,
  attentionPattern,
  qkHookNames,
  type ForwardOptions,
  type KVCache,
  type PatternOptions,
} from './models/transformer.js';
export { runModel, type Runnable, type RunModelOptions } from './hooks/run-model.js';
export { processWeights, type ProcessOptions } from './models/process-weights.js';
export {
  axisSize,
  hookNames,
  hookShape,
  hookSpec,
  hookTable,
  positionAxisOf,
  trailingShape,
  type Axis,
  type HookPointSpec,
} from './models/hook-table.js';
export { defaultModelDir, loadModelDir } from './models/load.js';
export { ARCHITECTURES } from './models/architectures.js';
export type { Weights } from './models/weights.js';
export * from './hooks/index.js';
export {
  HookedTransformer,
  nextTokenLoss,
  type ModelInput,
  type LoadOptions,
  type Hooks,
} from './hooks/hooked-transformer.js';
export { generate, sample, type GenerateOptions, type GenerateResult } from './hooks/generate.js';
// Methods
export { headScores, repeatedTokens, type HeadScores, type HeadScoreOptions } from './methods/heads.js';
export { singleToken } from './methods/tokens.js';
export {
  nextTokenLosses,
  readPredictions,
  readTokenStats,
  tokenStats,
  topTokens,
} from './methods/predictions.js';
export { logitLens, type LogitLensOptions, type LogitLensResult } from './methods/lens.js';
export { residualDecomposition, applyFinalNorm, type ResidualDecomposition } from './methods/decompose.js';
export {
  directLogitAttribution,
  directLogitAttributionMany,
  rankComponents,
  type DlaResult,
  type DlaComponent,
} from './methods/dla.js';
export {
  activationPatching,
  patchingMatrix,
  patchingTable,
  tokenPositionLabels,
  patchHookName,
  PATCH_TARGETS,
  type PatchTarget,
  type PatchDirection,
  type PatchingOptions,
  type PatchingResult,
  type PatchingMatrix,
} from './methods/patching.js';
// Circuits: the edge graph, ACDC, EAP / EAP-IG, causal scrubbing, attribution graphs
export * from './circuits/index.js';

// Training and model organisms
export { SGD, Adam, AdamW, clipGradNorm, schedules, type Optimizer } from './train/optimizers.js';
export { tokenizeFile, TokenDataset } from './train/dataset.js';
export { train, type TrainOptions, type TrainResult } from './train/trainer.js';
export { saveGpt2 } from './models/save.js';
export { initGpt2Weights } from './models/init.js';
export { trainInduction, attnOnlyConfig, type InductionOptions } from './organisms/induction.js';
export { trainSuperposition, superpositionStats } from './organisms/superposition.js';
export { sampleCorpus } from './hooks/generate.js';
export {
  attributionPatching,
  attributionCompared,
  correlation,
  ATTRIBUTION_TARGETS,
} from './methods/attribution.js';
export { ablate, ablateHeads, repeatLosses, ABLATION_KINDS } from './methods/ablation.js';
export {
  collectActivations,
  checkProbeLabels,
  trainProbe,
  probeScores,
  probeAccuracy,
  saveProbe,
  loadProbe,
  readLabelledJsonl,
} from './methods/probes.js';
export {
  differenceOfMeans,
  steeringHook,
  directionalAblationHook,
  steeredGeneration,
  nextTokenLogProbs,
} from './methods/steering.js';
export { runMonitor, monitorHook, monitoredGeneration, monitorPosition } from './methods/monitor.js';
export {
  createTunedLens,
  trainTunedLens,
  lensKL,
  tunedLensLogits,
  saveTunedLens,
  loadTunedLens,
} from './methods/tuned-lens.js';
export { linearCKA, svcca, similarityMatrix, matchFeatures } from './methods/similarity.js';
export { pathPatching, pathPatchingSweep } from './methods/path-patching.js';
// Sparse autoencoders and transcoders
export {
  SaeError,
  SAE_ARCHITECTURES,
  NORMALIZATIONS,
  saeConfig,
  validateSaeConfig,
  type SaeArchitecture,
  type SaeConfig,
  type ActivationNormalization,
} from './sae/config.js';
export { SparseAutoencoder, SAE_HOOKS, type SaeHookName, type SaeForward } from './sae/sae.js';
export {
  loadSaeLens,
  saveSaeLens,
  batchTopkToJumpRelu,
  readSaeLensSparsity,
  SAELENS_ARCHITECTURES,
  SAELENS_FORMAT_VERSION,
  type SaveSaeLensOptions,
} from './sae/saelens.js';
export { ActivationDataError, openRowSource, writeNpy, type RowSource } from './sae/row-source.js';
export {
  ActivationStore,
  harvestActivations,
  type HarvestOptions,
  type StoreManifest,
  type StreamOptions,
  type StreamState,
} from './sae/activation-store.js';
export {
  trainSae,
  defaultTrainOptions,
  SaeTrainError,
  type SaeTrainOptions,
  type SaeTrainResult,
  type SaeStepInfo,
  type TrainingData,
} from './sae/train.js';
export { storeTrainingData } from './sae/training-data.js';
export { SyntheticFeatures, meanMaxCosine, type SyntheticOptions } from './sae/synthetic.js';
export { geometricMedian } from './sae/stats.js';
export { readCorpus, defaultCorpusPath } from './sae/corpus.js';
export {
  corpusTrainingData,
  HELD_OUT_EVAL_TOKENS,
  type CorpusTraining,
  type CorpusTrainingOptions,
} from './sae/corpus-training.js';
export {
  FeatureStore,
  type FeatureStoreMeta,
  type FeatureSummary,
  type FeatureContext,
  type ActivationHistogram,
  type DensityHistogram,
} from './sae/feature-store.js';
export { scanFeatures, featureLogits, featureLogitsUnavailable, type FeatureLogits } from './sae/features.js';
export {
  makeSplicedHookPoint,
  splicedHookNames,
  spliceStartLayer,
  type Splice,
  type Spliceable,
  type SpliceTarget,
} from './hooks/splice.js';
export {
  withSAEs,
  checkSplice,
  saeHookNames,
  type SplicedSae,
  type SpliceOptions,
  type SaeSpec,
} from './sae/splice.js';
export {
  evaluateSae,
  evaluateRows,
  densityStats,
  type SaeEvaluation,
  type SaeRowMetrics,
  type EvaluateOptions,
} from './sae/evaluate.js';
export { type LoadedModel, type ModelDirOptions } from './models/load.js';
export {
  estimateLoadMemory,
  availableMemory,
  memoryAvailability,
  parseMemorySize,
  resolveMemoryLimit,
  checkLoadMemory,
  formatBytes,
  type MemoryEstimate,
  type MemoryLimit,
  type MemoryAvailability,
  type MemoryProbeOptions,
  compiledGraphBytes,
  BAKE_WEIGHTS_MAX_BYTES,
} from './models/memory.js';
export { checkContext, attentionBytes, checkAttentionMemory, type AttentionKeep } from './models/context.js';
export { type LoadProgress } from './models/load-progress.js';
// Hugging Face Hub downloads (huggingface_hub's cache layout) and model aliases
export * from './io/hub/index.js';
export { MODEL_ALIASES, findAlias, closeAliases, float32Bytes, type ModelAlias } from './models/aliases.js';
// Attribution graphs (circuit-tracer): transcoders replacing the MLPs, frozen attention and norms
export {
  attributionGraph,
  type AttributionGraph,
  type AttributionOptions,
} from './circuits/attribution-graph.js';
export { localReplacement, replacementForward, type LocalReplacement } from './circuits/replacement-model.js';
export {
  graphScores,
  nodeInfluence,
  pruneGraph,
  strongestPaths,
  type GraphScores,
  type PrunedGraph,
} from './circuits/attribution-influence.js';
export { graphFile, saveGraphFile, type GraphFile } from './circuits/attribution-file.js';
export { defaultTranscodersDir, loadTranscoders } from './circuits/transcoder-set.js';
export { circuitSpec, type CircuitPlot } from './plot/circuit.js';
