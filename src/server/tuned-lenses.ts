// The tuned lenses a server has open, each paired with one open model: opened from folders at start
// (`sonde serve --tuned-lens DIR`) or trained by a `tuned-lens` job and kept for the session.
import path from 'node:path';
import { loadTunedLens, TunedLensError, type TunedLens } from '../methods/tuned-lens.js';
import type { OpenModel } from './registry.js';

export interface OpenTunedLens {
  id: string;
  /** The folder it was loaded from (null once a trained lens's temporary folder is gone). */
  dir: string | null;
  modelId: string;
  lens: TunedLens;
}

/** What GET /api/info lists of each. */
export interface TunedLensInfo {
  id: string;
  dir: string | null;
  modelId: string;
  steps: number;
  /** Mean held-out KL(final || lens) per layer, when measured after training. */
  heldOutKL: { logit: number[]; tuned: number[] } | null;
}

export class TunedLenses {
  readonly byId = new Map<string, OpenTunedLens>();

  /**
   * Loads the lens in `dir` and pairs it with the open model it was trained on (by folder), else the first
   * one whose shape it fits; an error naming the folder when none fits.
   */
  open(dir: string, models: OpenModel[], id = path.basename(path.resolve(dir))): OpenTunedLens {
    const meta = loadTunedLens(dir).meta;
    const same = models.find((m) => path.resolve(m.dir) === path.resolve(meta.model));
    const errors: string[] = [];
    for (const m of same ? [same, ...models.filter((x) => x !== same)] : models) {
      try {
        return this.add({ id, dir: path.resolve(dir), modelId: m.id, lens: loadTunedLens(dir, m.model) });
      } catch (e) {
        if (!(e instanceof TunedLensError)) throw e;
        errors.push(`${m.id}: ${e.message}`);
      }
    }
    throw new TunedLensError(`tuned lens '${dir}' fits none of the open models (${errors.join('; ')})`);
  }

  /** Keeps `entry` under a free id (its own, or with -2, -3, … added). */
  add(entry: OpenTunedLens): OpenTunedLens {
    let id = entry.id;
    for (let n = 2; this.byId.has(id); n++) id = `${entry.id}-${n}`;
    const kept = { ...entry, id };
    this.byId.set(id, kept);
    return kept;
  }

  /** The first lens paired with `modelId`, if any. */
  forModel(modelId: string): OpenTunedLens | undefined {
    return [...this.byId.values()].find((l) => l.modelId === modelId);
  }

  info(): TunedLensInfo[] {
    return [...this.byId.values()].map(({ id, dir, modelId, lens }) => ({
      id,
      dir,
      modelId,
      steps: lens.meta.steps,
      heldOutKL: lens.meta.heldOutKL ?? null,
    }));
  }
}
