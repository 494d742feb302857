// Hugging Face Hub downloads into huggingface_hub's cache layout (shared with Python).
export * from './errors.js';
export { hubCacheDir, hubEndpoint, hubToken, hubOffline, hfHome } from './settings.js';
export { repoFolderName, RepoCache, isCommitHash, isRepoId } from './cache-layout.js';
export { downloadFile, type HubOptions, type DownloadProgress, type CachedFile } from './download.js';
export {
  snapshotDownload,
  listRepoFiles,
  type SnapshotOptions,
  type Snapshot,
  type RepoListing,
} from './snapshot.js';
export { downloadModel, cachedModel, missingModelFiles, MODEL_FILES } from './model-files.js';
export { resolveModel, parseModelSpec, type ModelSpec } from './resolve-model.js';
