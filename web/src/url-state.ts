// Each view's state lives in the page address, so a view can be shared by its URL.
import { useCallback, useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();
const subscribe = (fn: () => void) => {
  listeners.add(fn);
  window.addEventListener('popstate', fn);
  return () => {
    listeners.delete(fn);
    window.removeEventListener('popstate', fn);
  };
};

/** All parameters of the address (`view`, `model`, `prompt`, and each view's own). */
export function useUrlParams(): URLSearchParams {
  const search = useSyncExternalStore(subscribe, () => location.search);
  return new URLSearchParams(search);
}

/** Sets (or, with null, removes) parameters; `push` adds a history entry (changing view), else replaces. */
export function setUrlParams(change: Record<string, string | null>, push = false): void {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(change)) {
    if (v === null) params.delete(k);
    else params.set(k, v);
  }
  const url = `${location.pathname}?${params.toString()}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
  for (const fn of listeners) fn();
}

/** One parameter as state: [value (or the fallback), setter]. */
export function useUrlParam(name: string, fallback: string): [string, (v: string) => void] {
  const value = useUrlParams().get(name) ?? fallback;
  const set = useCallback((v: string) => setUrlParams({ [name]: v }), [name]);
  return [value, set];
}
