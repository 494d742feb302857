/**
 * Runs `fn`, then `restore`: at once when fn returns or throws, or when its promise settles, so a scoped
 * change (hooks, spliced SAEs) never outlives the call that asked for it.
 */
export function runScoped<T>(fn: () => T, restore: () => void): T {
  let result: T;
  try {
    result = fn();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}
