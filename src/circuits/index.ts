export * from './graph.js';
export * from './pairs.js';
export * from './metric.js';
export * from './edge-run.js';
export * from './task.js';
export * from './eap.js';
export * from './acdc.js';
