// The models and SAEs a server has open, by id. Jobs reopen them by folder in their worker.
import path from 'node:path';
import { HookedTransformer } from '../hooks/hooked-transformer.js';
import { resolveModel } from '../io/hub/index.js';
import { loadSaeLens } from '../sae/saelens.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import { modelMismatch } from '../sae/provenance.js';
import { ApiError } from './errors.js';

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
}

export class Registry {
  readonly models = new Map<string, OpenModel>();
  readonly saes = new Map<string, OpenSae>();

  /** Opens the models (specs as `--model` takes them; none = the built-in model) and the SAE folders. */
  static async open(modelSpecs: string[], saeDirs: string[]): Promise<Registry> {
    const r = new Registry();
    for (const spec of modelSpecs.length > 0 ? modelSpecs : [undefined]) {
      const dir = await resolveModel(spec);
      const id = uniqueId(r.models, path.basename(dir));
      r.models.set(id, { id, dir, model: HookedTransformer.load(dir) });
    }
    for (const dir of saeDirs) {
      const sae = loadSaeLens(dir);
      const id = uniqueId(r.saes, path.basename(path.resolve(dir)));
      // The first open model its cfg.json names (else the first model, with a warning).
      const models = [...r.models.values()];
      const paired =
        models.find((m) => modelMismatch(sae.cfg.metadata, m.model.source) === null) ?? models[0]!;
      const warning = modelMismatch(sae.cfg.metadata, paired.model.source);
      r.saes.set(id, { id, dir: path.resolve(dir), sae, modelId: paired.id, warning });
    }
    return r;
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
    };
  }
}

function uniqueId(taken: Map<string, unknown>, base: string): string {
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  return id;
}
