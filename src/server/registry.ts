// The models and SAEs a server has open, by id. Jobs reopen them by folder in their worker.
import path from 'node:path';
import { HookedTransformer } from '../hooks/hooked-transformer.js';
import { resolveModel } from '../io/hub/index.js';
import { loadSaeLens } from '../sae/saelens.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import { modelMismatch } from '../sae/provenance.js';
import { hookSpec, trailingShape } from '../models/hook-table.js';
import { ApiError } from './errors.js';
import { TunedLenses, type TunedLensInfo } from './tuned-lenses.js';

export interface OpenModel {
  id: string;
  /** The folder it was loaded from (jobs load it again from here). */
  dir: string;
  model: HookedTransformer;
}

export interface OpenSae {
  id: string;
  dir: string;
  sae: SparseAutoencoder;
  /** The model it reads, by id (the first open model whose name its cfg.json names, else the first model). */
  modelId: string;
  /** A warning when its cfg.json names another model than the one it is paired with. */
  warning: string | null;
}

/** What GET /api/info lists. */
export interface RegistryInfo {
  models: {
    id: string;
    dir: string;
    nLayers: number;
    nHeads: number;
    dModel: number;
    nCtx: number;
    dVocab: number;
  }[];
  saes: {
    id: string;
    dir: string;
    modelId: string;
    hook: string;
    width: number;
    architecture: string;
    warning: string | null;
  }[];
  tunedLenses: TunedLensInfo[];
}

export class Registry {
  readonly models = new Map<string, OpenModel>();
  readonly saes = new Map<string, OpenSae>();
  readonly tunedLenses = new TunedLenses();

  /** Opens the models (specs as `--model` takes them; none = the built-in model), the SAE and tuned-lens folders. */
  static async open(
    modelSpecs: string[],
    saeDirs: string[],
    tunedLensDirs: string[] = [],
  ): Promise<Registry> {
    const r = new Registry();
    for (const spec of modelSpecs.length > 0 ? modelSpecs : [undefined]) {
      // Absolute: job workers open it again, from their own working directory.
      const dir = path.resolve(await resolveModel(spec));
      const id = uniqueId(r.models, path.basename(dir));
      r.models.set(id, { id, dir, model: HookedTransformer.load(dir) });
    }
    for (const dir of saeDirs) r.addSae(dir);
    for (const dir of tunedLensDirs) r.tunedLenses.open(dir, [...r.models.values()]);
    return r;
  }

  /** Opens the SAE in `dir`, paired with the open model its cfg.json names (else the first). */
  addSae(dir: string): OpenSae {
    const sae = loadSaeLens(dir);
    const id = uniqueId(this.saes, path.basename(path.resolve(dir)));
    const { model, warning } = pairSae(sae, [...this.models.values()]);
    const open = { id, dir: path.resolve(dir), sae, modelId: model.id, warning };
    this.saes.set(id, open);
    return open;
  }

  /** The model `id` names (undefined = the first one), or a 404 naming the open ones. */
  model(id: string | undefined): OpenModel {
    const m = id === undefined ? [...this.models.values()][0] : this.models.get(id);
    if (m === undefined)
      throw new ApiError(404, `no model '${id}' is open (open: ${[...this.models.keys()].join(', ')})`);
    return m;
  }

  sae(id: string): OpenSae {
    const s = this.saes.get(id);
    if (s === undefined) {
      const open = [...this.saes.keys()];
      throw new ApiError(
        404,
        `no SAE '${id}' is open (${open.length > 0 ? `open: ${open.join(', ')}` : 'start sonde serve with --sae DIR'})`,
      );
    }
    return s;
  }

  info(): RegistryInfo {
    return {
      models: [...this.models.values()].map(({ id, dir, model }) => ({
        id,
        dir,
        nLayers: model.cfg.nLayers,
        nHeads: model.cfg.nHeads,
        dModel: model.cfg.dModel,
        nCtx: model.cfg.nCtx,
        dVocab: model.cfg.vocabSize,
      })),
      saes: [...this.saes.values()].map(({ id, dir, modelId, sae, warning }) => ({
        id,
        dir,
        modelId,
        hook: sae.cfg.hookName,
        width: sae.cfg.dSae,
        architecture: sae.cfg.architecture,
        warning,
      })),
      tunedLenses: this.tunedLenses.info(),
    };
  }
}

/**
 * The open model an SAE reads: the one its cfg.json names (metadata model_name) when open, else the
 * first; with a warning when the names differ or the SAE does not fit the model (hook or width).
 */
export function pairSae(
  sae: SparseAutoencoder,
  models: OpenModel[],
): { model: OpenModel; warning: string | null } {
  const named = models.find((m) => modelMismatch(sae.cfg.metadata, m.model.source) === null);
  const model = named ?? models[0]!;
  const warnings = [modelMismatch(sae.cfg.metadata, model.model.source), misfit(sae, model)];
  return { model, warning: warnings.filter((w) => w !== null).join('; ') || null };
}

/** Why an SAE cannot be spliced into a model (its hook is not there, or the widths differ), or null. */
function misfit(sae: SparseAutoencoder, { id, model }: OpenModel): string | null {
  const { hookName, dIn } = sae.cfg;
  const spec = hookSpec(model.cfg, hookName);
  if (spec === undefined) return `model '${id}' has no hook '${hookName}'`;
  // A row is the whole trailing activation ([n_heads, d_head] flattened) or its last axis (one head).
  const trailing = trailingShape(model.cfg, spec);
  if (trailing === null || trailing.length === 0) return null;
  const widths = [trailing.reduce((a, b) => a * b, 1), trailing[trailing.length - 1]!];
  return widths.includes(dIn)
    ? null
    : `its d_in is ${dIn}, but '${hookName}' of model '${id}' has width ${widths[0]}`;
}

function uniqueId(taken: Map<string, unknown>, base: string): string {
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  return id;
}
