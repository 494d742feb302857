// sonde sae: sparse autoencoders and transcoders (train, eval, features, show). Each subcommand lives in
// its own file; this one only groups them.
import type { Command } from 'commander';
import { registerSaeEval } from './sae-eval.js';
import { registerSaeFeatures } from './sae-features.js';
import { registerSaeTrain } from './sae-train.js';

export function registerSae(program: Command): void {
  const sae = program
    .command('sae')
    .description('sparse autoencoders and transcoders: train, evaluate, explore features (SAELens format)');
  registerSaeTrain(sae);
  registerSaeEval(sae);
  registerSaeFeatures(sae);
}
