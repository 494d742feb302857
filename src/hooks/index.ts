export * from './hooks.js';
export { ActivationCache } from './cache.js';
