import fs from 'node:fs';
import path from 'node:path';
import { SondeError } from '../errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { replaceDir } from '../models/save.js';
import type { Weights } from '../models/weights.js';
import { Tensor } from '../engine/tensor.js';
import type { OptimizerState } from './optimizers.js';
import { tempSibling } from '../io/leftovers.js';

export class CheckpointError extends SondeError {}
/** A checkpoint made with other settings than the run that would resume it. */
export class CheckpointSettingsError extends CheckpointError {}

/**
 * What identifies a run (learning rate, seed, budget, data...), recorded in its checkpoints: resuming
 * with other values would give a model trained by two recipes, so it is refused.
 */
export type RunSettings = Record<string, string | number | boolean | null>;

export interface CheckpointState {
  step: number;
  rngState: number;
  optimizer: { kind: string; steps: number; lr: number };
  /** A fingerprint of the model shape, to refuse a checkpoint of another model. */
  modelKey: string;
  losses: number[];
  evals: { step: number; loss: number }[];
  extra?: Record<string, unknown>;
  /** The run's settings (absent in checkpoints from before they were recorded: not compared). */
  settings?: RunSettings;
}

/**
 * Writes weights, optimizer buffers and loop state into `dir` atomically: everything goes to a temp
 * folder that replaces `dir` by rename, so a kill at any moment leaves the previous checkpoint whole.
 */
export async function saveCheckpoint(
  dir: string,
  weights: Weights,
  opt: OptimizerState,
  state: CheckpointState,
): Promise<void> {
  // Every value is read before anything is written, so the folder is never left half-made by a wait.
  const w: Record<string, TensorToWrite> = {};
  for (const [n, t] of weights) w[n] = { dtype: 'F32', shape: t.shape, data: await t.f32() };
  const target = path.resolve(dir);
  removeSupersededCheckpoints(target);
  const tmp = tempSibling(target);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    writeSafetensors(path.join(tmp, 'model.safetensors'), w);
    const o: Record<string, TensorToWrite> = {};
    for (const [n, b] of Object.entries(opt.buffers)) o[n] = { dtype: 'F32', shape: [b.length], data: b };
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), o);
    fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(state));
    replaceDir(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Previous checkpoints (`dir.old-*`) a kill left beside a whole one: never read again. */
function removeSupersededCheckpoints(target: string): void {
  if (!fs.existsSync(path.join(target, 'state.json'))) return;
  for (const old of oldCheckpoints(target)) fs.rmSync(old, { recursive: true, force: true });
}

function oldCheckpoints(target: string): string[] {
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) return [];
  return fs
    .readdirSync(parent)
    .filter((f) => f.startsWith(`${path.basename(target)}.old-`))
    .map((f) => path.join(parent, f));
}

/** The checkpoint folder to resume from: `dir`, or the previous one if a save was interrupted mid-rename. */
function findCheckpoint(dir: string): string | null {
  const target = path.resolve(dir);
  if (fs.existsSync(path.join(target, 'state.json'))) return target;
  return oldCheckpoints(target).find((f) => fs.existsSync(path.join(f, 'state.json'))) ?? null;
}

export function checkpointExists(dir: string): boolean {
  return findCheckpoint(dir) !== null;
}

/**
 * Loads a checkpoint into `weights` (the map's entries are replaced by the saved tensors; tensors are
 * immutable) and returns the optimizer and loop state.
 */
export function loadCheckpoint(
  dir: string,
  weights: Weights,
  modelKey: string,
): { state: CheckpointState; optimizer: OptimizerState } {
  const found = findCheckpoint(dir);
  if (!found) throw new CheckpointError(`no checkpoint in '${dir}'`);
  const state = JSON.parse(fs.readFileSync(path.join(found, 'state.json'), 'utf8')) as CheckpointState;
  if (state.modelKey !== modelKey) {
    throw new CheckpointError(
      `checkpoint '${found}' is for another model (${state.modelKey}), not ${modelKey}`,
    );
  }
  const wf = SafetensorsFile.open(path.join(found, 'model.safetensors'));
  try {
    for (const [n, t] of weights) {
      if (!wf.has(n)) throw new CheckpointError(`checkpoint '${found}' has no weight '${n}'`);
      const data = wf.readFloat32(n);
      if (data.length !== t.size)
        throw new CheckpointError(`checkpoint weight '${n}' has ${data.length} values, model has ${t.size}`);
      weights.set(n, new Tensor(data, t.shape));
    }
  } finally {
    wf.close();
  }
  const of = SafetensorsFile.open(path.join(found, 'optimizer.safetensors'));
  const buffers: Record<string, Float32Array> = {};
  try {
    for (const n of of.names()) buffers[n] = of.readFloat32(n);
  } finally {
    of.close();
  }
  return { state, optimizer: { ...state.optimizer, buffers } };
}

/**
 * Refuses to resume checkpoint `dir` (at `step`) when it was made with other settings, naming each one
 * that differs (old → new).
 */
export function checkResumeSettings(
  dir: string,
  step: number,
  recorded: RunSettings | undefined,
  now: RunSettings,
): void {
  if (!recorded) return;
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  const diffs = [...new Set([...Object.keys(recorded), ...Object.keys(now)])]
    .filter((k) => JSON.stringify(recorded[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k} ${show(recorded[k])} → ${show(now[k])}`);
  if (diffs.length === 0) return;
  throw new CheckpointSettingsError(
    `checkpoint '${dir}' (step ${step}) was made with other settings: ${diffs.join(', ')}; ` +
      'rerun with the same settings to resume it, or with --no-resume to start over',
  );
}
