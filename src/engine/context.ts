import type { Kernel } from './backend/backend.js';
import type { Tensor } from './tensor.js';

/** Receives every kernel the engine issues, so a span can be replayed as one graph. */
export interface OpRecorder {
  record(kernel: Kernel, inputs: Tensor[], outputs: Tensor[]): void;
}

/**
 * The engine's per-call state. It is not a module global: two asynchronous calls in flight at once
 * (a server answering two requests, say) each see their own grad mode, recorder and laziness.
 */
export interface EngineState {
  readonly gradEnabled: boolean;
  readonly recorder: OpRecorder | null;
  /** Ops record a graph instead of running; values are computed when read (engine/lazy.ts). */
  readonly lazy: boolean;
}

/** Where the state lives: AsyncLocalStorage under Node (engine/node.ts), a plain stack elsewhere. */
export interface StateStore {
  get(): EngineState;
  run<T>(state: EngineState, fn: () => T): T;
}

const ROOT: EngineState = { gradEnabled: true, recorder: null, lazy: false };

/**
 * Without AsyncLocalStorage: correct for synchronous scopes; an async function run in a scope sees
 * the scope only until its first await.
 */
function stackStore(): StateStore {
  let current = ROOT;
  return {
    get: () => current,
    run(state, fn) {
      const prev = current;
      current = state;
      try {
        return fn();
      } finally {
        current = prev;
      }
    },
  };
}

let store: StateStore = stackStore();

export function setStateStore(s: StateStore): void {
  store = s;
}

export function engineState(): EngineState {
  return store.get();
}

/** Runs fn with part of the engine state changed, for fn and everything it awaits. */
export function withEngineState<T>(change: Partial<EngineState>, fn: () => T): T {
  return store.run({ ...store.get(), ...change }, fn);
}

export const DEFAULT_ENGINE_STATE = ROOT;
