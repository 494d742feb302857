// Writes one benchmark's section of BENCHMARKS.md, leaving the other sections as they are.
import fs from 'node:fs';
import path from 'node:path';

/** Replaces the `heading` section (up to the next `#`/`##` heading) or appends it; atomic write. */
export function writeSection(file: string, heading: string, section: string): void {
  const target = path.resolve(file);
  const old = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
  const lines = old.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === heading);
  let text: string;
  if (start < 0) {
    const base = old.replace(/\n*$/, '');
    text = base ? `${base}\n\n${section}` : section;
  } else {
    let end = lines.findIndex((l, i) => i > start && /^#{1,2} /.test(l));
    if (end < 0) end = lines.length;
    const before = lines.slice(0, start).join('\n');
    const after = lines.slice(end).join('\n');
    text = `${before}${before ? '\n' : ''}${section}${after ? `\n${after}` : ''}`;
  }
  const tmp = `${target}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
