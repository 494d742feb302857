export * from './hooks.js';
export { ActivationCache } from './cache.js';
export * from './resid-stacks.js';
