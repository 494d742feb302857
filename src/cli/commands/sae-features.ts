// sonde sae features (being written).
import type { Command } from 'commander';

export function registerSaeFeatures(_sae: Command): void {}
