// One CLI vocabulary (issue 12, item 11): new spellings, old ones as hidden aliases with a deprecation
// note, heads accepted as L2H6 or 2.6, and --json errors as one JSON object on stdout.
import { describe, expect, it } from 'vitest';
import { sonde, type CliResult } from '../helpers/cli.js';

/** With --json: exit 1, stdout exactly one {"error": {"type", "message"}} object, stderr empty. */
function jsonError(r: CliResult): { type: string; message: string } {
  expect(r.code).toBe(1);
  expect(r.stderr).toBe('');
  const doc = JSON.parse(r.stdout) as { error: { type: string; message: string } };
  expect(Object.keys(doc)).toEqual(['error']);
  expect(Object.keys(doc.error).sort()).toEqual(['message', 'type']);
  return doc.error;
}

// One spawn at a time: the machine these run on is shared.
describe('one CLI vocabulary', () => {
  it('ablate: --batch-size, and --head as L1H2 or 1.2; --batch is a deprecated alias', async () => {
    const args = ['ablate', '--repeated', '4', '--json'];
    const lh = await sonde(...args, '--batch-size', '2', '--head', 'L1H2');
    const dotted = await sonde(...args, '--batch-size', '2', '--head', '1.2');
    const old = await sonde(...args, '--batch', '2', '--head', 'l1h2');
    const dflt = await sonde(...args, '--head', 'L1H2');
    for (const r of [lh, dotted, old, dflt]) expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(lh.stdout) as { head: string; loss: number; ablatedLoss: number };
    expect(doc.head).toBe('L1H2');
    expect(dotted.stdout).toBe(lh.stdout);
    // The alias sets --batch-size: the same two rows, not the default eight.
    expect(old.stdout).toBe(lh.stdout);
    expect(JSON.parse(dflt.stdout)).not.toEqual(doc);
    expect(lh.stderr).toBe('');
    expect(old.stderr).toBe('sonde: --batch is deprecated: use --batch-size\n');
  }, 600_000);

  it('help shows only the new spellings', async () => {
    const ablate = await sonde('ablate', '--help');
    const dla = await sonde('dla', '--help');
    const steer = await sonde('steer', '--help');
    const patch = await sonde('patch', '--help');
    const saeTrain = await sonde('sae', 'train', '--help');
    const saeShow = await sonde('sae', 'show', '--help');
    const train = await sonde('train', 'induction', '--help');
    expect(ablate.stdout).toMatch(/--batch-size <n>/);
    expect(ablate.stdout).toMatch(/--head <LxHy>/);
    expect(ablate.stdout).not.toMatch(/--batch </);
    expect(dla.stdout).toMatch(/--top-k <n>/);
    expect(dla.stdout).not.toMatch(/--top </);
    expect(steer.stdout).toMatch(/--probe <probe\.json>/);
    expect(steer.stdout).not.toMatch(/--direction/);
    expect(patch.stdout).toMatch(/--component <name>/);
    expect(patch.stdout).not.toMatch(/--target/);
    expect(saeTrain.stdout).toMatch(/--n-tokens <n>/);
    expect(saeTrain.stdout).toMatch(/--top-k <n>/);
    expect(saeTrain.stdout).not.toMatch(/--tokens |--k </);
    expect(saeShow.stdout).toMatch(/--top-k <k>/);
    expect(saeShow.stdout).not.toMatch(/--logits|--tokens /);
    expect(train.stdout).toMatch(/--n-layers <n>[\s\S]*--n-heads <n>[\s\S]*--batch-size <n>/);
    expect(train.stdout).not.toMatch(/--layers|--heads|--batch </);
  }, 600_000);

  it('--json: usage, parse and runtime errors are one JSON object on stdout', async () => {
    const none = await sonde('--json');
    const unknownCmd = await sonde('--json', 'bogus');
    const unknownOpt = await sonde('run', '--bogus', '--json');
    const badValue = await sonde('run', '--top-k', 'x', '--json');
    const missing = await sonde('patch', '--clean', 'a', '--json');
    const hook = await sonde('cache', '--hook', 'nope', '--json');
    const alias = await sonde('ablate', '--batch', '0', '--json');
    expect(jsonError(none)).toEqual({ type: 'UsageError', message: "missing command (see 'sonde --help')" });
    expect(jsonError(unknownCmd)).toEqual({
      type: 'UsageError',
      message: "unknown command 'bogus' (see 'sonde --help')",
    });
    expect(jsonError(unknownOpt)).toEqual({ type: 'UsageError', message: "unknown option '--bogus'" });
    expect(jsonError(badValue)).toEqual({
      type: 'UsageError',
      message: "option '--top-k <n>' argument 'x' is invalid. Expected an integer >= 0.",
    });
    expect(jsonError(missing)).toEqual({
      type: 'UsageError',
      message: "required option '--corrupt <text>' not specified",
    });
    expect(jsonError(hook)).toEqual({
      type: 'HookError',
      message: "unknown hook point 'nope' (list them with 'sonde hooks')",
    });
    // A bad value given through an old spelling is reported under that spelling.
    expect(jsonError(alias).message).toBe(
      "option '--batch <n>' argument '0' is invalid. Expected an integer >= 1.",
    );
  }, 600_000);

  it('without --json an error stays one line on stderr; a bad head names both forms', async () => {
    const r = await sonde('ablate', '--head', 'H2');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "sonde: option '--head <LxHy>' argument 'H2' is invalid. Expected a head as LxHy, e.g. L1H2 (or 1.2).\n",
    );
  }, 600_000);
});
