// sonde sae train (being written).
import type { Command } from 'commander';

export function registerSaeTrain(_sae: Command): void {}
