// Progress bars on stderr (cli-progress). They only appear on an interactive terminal and never with
// --json or --quiet, so that stdout stays clean for pipes and JSON consumers.
import cliProgress from 'cli-progress';
import type { GlobalOptions } from './common.js';

export interface Progress {
  /** Starts (or restarts) a bar of `total` steps labelled `label`. */
  start(total: number, label: string): void;
  increment(by?: number): void;
  /** Removes the bar from the terminal. */
  stop(): void;
  readonly enabled: boolean;
}

const NONE: Progress = { start() {}, increment() {}, stop() {}, enabled: false };

export function progressEnabled(g: Pick<GlobalOptions, 'json' | 'quiet'>): boolean {
  return !g.json && !g.quiet && process.stderr.isTTY === true && process.env.TERM !== 'dumb';
}

export function createProgress(g: Pick<GlobalOptions, 'json' | 'quiet'>): Progress {
  if (!progressEnabled(g)) return NONE;
  let bar: cliProgress.SingleBar | null = null;
  return {
    enabled: true,
    start(total, label) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {value}/{total}`,
          barsize: 30,
          clearOnComplete: true,
          hideCursor: true,
          fps: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    increment(by = 1) {
      bar?.increment(by);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
