// Progress bars on stderr (cli-progress). They only appear on an interactive terminal and never with
// --json or --quiet, so that stdout stays clean for pipes and JSON consumers.
import cliProgress from 'cli-progress';
import type { GlobalOptions } from './common.js';

export interface Progress {
  /**
   * Starts (or restarts) a bar of `total` steps labelled `label`; `fields` names live values shown
   * after the count (set them with update).
   */
  start(total: number, label: string, fields?: string[]): void;
  increment(by?: number): void;
  /** Sets the bar's value and its live fields. */
  update(value: number, fields?: Record<string, string>): void;
  /** Removes the bar from the terminal. */
  stop(): void;
  readonly enabled: boolean;
}

const NONE: Progress = { start() {}, increment() {}, update() {}, stop() {}, enabled: false };

export function progressEnabled(g: Pick<GlobalOptions, 'json' | 'quiet'>): boolean {
  return !g.json && !g.quiet && process.stderr.isTTY === true && process.env.TERM !== 'dumb';
}

export function createProgress(g: Pick<GlobalOptions, 'json' | 'quiet'>): Progress {
  if (!progressEnabled(g)) return NONE;
  let bar: cliProgress.SingleBar | null = null;
  return {
    enabled: true,
    start(total, label, fields = []) {
      bar?.stop();
      const extra = fields.map((f) => ` ${f} {${f}}`).join('');
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} [{bar}] {value}/{total}${extra}`,
          barsize: 30,
          clearOnComplete: true,
          hideCursor: true,
          fps: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, Object.fromEntries(fields.map((f) => [f, ''])));
    },
    update(value, fields) {
      bar?.update(value, fields);
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

/** A library's `onProgress(done, total)` drawn on `bar`, started at the first report. */
export function reportTo(bar: Progress, label: string): (done: number, total: number) => void {
  let shown = 0;
  return (done, total) => {
    if (shown === 0) bar.start(total, label);
    bar.increment(done - shown);
    shown = done;
  };
}
