// sonde hooks: every hook point name, optionally with the activation shapes.
import type { Command } from 'commander';
import { axisSize, hookTable, type HookedTransformer } from '../../index.js';
import { fmtShape, globalsOf, loadModel, note, out, printJson, table } from '../common.js';

export function registerHooks(program: Command): void {
  program
    .command('hooks')
    .description('list the hook point names (TransformerLens names), in forward order')
    .option('--filter <substring>', 'only names containing this (case-insensitive)')
    .option('--shapes', "show each activation's shape ('batch' and 'pos' for the batch and position axes)")
    .option('--attn-result', 'include the per-head attention outputs (attn.hook_result)')
    .addHelpText(
      'after',
      `
Examples:
  sonde hooks --filter resid
  sonde hooks --filter blocks.0. --shapes
  sonde hooks --json`,
    )
    .action(async (opts: { filter?: string; shapes?: boolean; attnResult?: boolean }, cmd: Command) => {
      const g = globalsOf(cmd);
      const model = await loadModel(g);
      const useAttnResult = opts.attnResult === true;
      const needle = opts.filter?.toLowerCase();
      const names = model
        .hookNames({ useAttnResult })
        .filter((n) => !needle || n.toLowerCase().includes(needle));
      if (names.length === 0) note(g, `no hook point matches '${opts.filter}'`);
      if (!opts.shapes) {
        if (g.json) return printJson(names);
        for (const n of names) out(n);
        return;
      }
      const shapes = hookShapes(model, names, useAttnResult);
      const rows = names.map((name) => ({ name, shape: shapes.get(name)! }));
      if (g.json) return printJson(rows);
      for (const line of table(rows.map((r) => [r.name, fmtShape(r.shape)]))) out(line);
    });
}

/**
 * Shapes from the model's hook table: config sizes as numbers, the batch and position axes by name
 * ('pos' for query and key positions too). Points the table does not list (a spliced SAE's) are measured
 * on one forward pass whose length differs from every size of the model.
 */
export function hookShapes(
  model: HookedTransformer,
  names: string[],
  useAttnResult: boolean,
): Map<string, (number | string)[]> {
  const result = new Map<string, (number | string)[]>();
  const c = model.cfg;
  const byName = new Map(hookTable(c, { useAttnResult }).map((h) => [h.name, h]));
  const unlisted: string[] = [];
  for (const name of names) {
    const spec = byName.get(name);
    if (!spec) unlisted.push(name);
    else
      result.set(
        name,
        spec.axes.map((a) => (a === 'batch' ? 'batch' : (axisSize(c, a) ?? 'pos'))),
      );
  }
  if (unlisted.length === 0) return result;
  const taken = new Set([1, c.nHeads, c.nKvHeads, c.dHead, c.dModel, c.dMlp, c.vocabSize]);
  let P = 3;
  while (taken.has(P)) P++;
  const first = c.bosTokenId ?? 0;
  const ids = Array.from({ length: Math.min(P, c.nCtx) }, (_, i) => (i === 0 ? first : i % c.vocabSize));
  const { cache } = model.runWithCache(ids, { names: unlisted, useAttnResult });
  for (const name of unlisted) {
    const shape = cache.get(name).shape;
    result.set(
      name,
      shape.map((d, axis) => (axis === 0 ? 'batch' : d === ids.length && ids.length === P ? 'pos' : d)),
    );
  }
  return result;
}
