// sonde sae eval (being written).
import type { Command } from 'commander';

export function registerSaeEval(_sae: Command): void {}
