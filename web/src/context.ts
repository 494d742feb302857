// What every view gets: the server's open models and SAEs, and the chosen model.
import { createContext, useContext } from 'react';
import type { Info } from './api';

export interface Explorer {
  info: Info;
  /** The chosen model's id (the URL's `model`, else the first open model). */
  model: string;
  /** Reads /api/info again (after a job opened an SAE). */
  refresh(): void;
}

export const ExplorerContext = createContext<Explorer | null>(null);

export function useExplorer(): Explorer {
  const e = useContext(ExplorerContext);
  if (e === null) throw new Error('useExplorer outside the explorer');
  return e;
}
