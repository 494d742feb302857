export interface ProcessOptions {}
export function processWeights(cfg: any, weights: any, _p: ProcessOptions) { return { cfg, weights }; }
