// allow/ignore patterns as huggingface_hub reads them: Python's fnmatch, where `*` also matches '/',
// and a pattern ending in '/' means everything under that folder.

function fnmatchRegExp(pattern: string): RegExp {
  if (pattern.endsWith('/')) pattern += '*';
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!')) set = '^' + set.slice(1);
      re += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** The names matching at least one allow pattern (all when none) and no ignore pattern. */
export function filterPatterns(names: string[], allow?: string[], ignore?: string[]): string[] {
  const allowRe = allow?.map(fnmatchRegExp);
  const ignoreRe = (ignore ?? []).map(fnmatchRegExp);
  return names.filter(
    (n) => (!allowRe || allowRe.some((r) => r.test(n))) && !ignoreRe.some((r) => r.test(n)),
  );
}
