// sonde steer: add a direction at a hook while generating; unsteered and steered text side by side.
import fs from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { loadProbe } from '../../methods/probes.js';
import {
  differenceOfMeans,
  nextTokenLogProbs,
  steeredGeneration,
  steeringHook,
} from '../../methods/steering.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import { loadSaeLens } from '../../sae/saelens.js';
import { featureDirection } from '../../sae/text-features.js';
import {
  fitText,
  fmt,
  globalsOf,
  intArg,
  loadModel,
  out,
  printJson,
  temperatureArg,
  truncateFlags,
  truncateOption,
  validateHookNames,
  type TruncateFlags,
  type TruncateKeep,
} from '../common.js';
import { numberArg } from './probe.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

/** One text per line; a JSON line with a "text" field counts as its text. Blank lines are skipped. */
export function readTexts(file: string): string[] {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read '${file}'`);
  }
  const texts = raw
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      if (l.trimStart().startsWith('{')) {
        try {
          const o = JSON.parse(l) as { text?: unknown };
          if (typeof o.text === 'string') return o.text;
        } catch {
          // plain text that starts with '{'
        }
      }
      return l;
    });
  if (texts.length === 0) throw new UsageError(`'${file}' has no texts`);
  return texts;
}

/** The texts of a file (readTexts) and their token ids within the model's context (fitText). */
export function readFittedTexts(
  model: HookedTransformer,
  file: string,
  flags: TruncateFlags,
  flag: string,
): { texts: string[]; ids: number[][] } {
  const texts = readTexts(file);
  return { texts, ids: texts.map((t, i) => fitText(model, t, flags, `text ${i + 1} of ${flag} '${file}'`)) };
}

interface SteerOpts {
  prompt: string;
  positive?: string;
  negative?: string;
  probe?: string;
  sae?: string;
  feature?: number;
  hook?: string;
  coefficient: number;
  maxTokens: number;
  seed: number;
  temperature: number;
  plot?: string;
  truncate?: TruncateKeep | true;
}

export function registerSteer(program: Command): void {
  program
    .command('steer')
    .description('steer generation by adding a direction at a hook point (difference of means or a probe)')
    .requiredOption('--prompt <text>', 'the prompt to continue')
    .option('--positive <file>', 'texts towards which to steer (one per line)')
    .option('--negative <file>', 'texts away from which to steer (one per line)')
    .option('--probe <probe.json>', "a probe file: steer along its unit direction (hook: the probe's)")
    .option('--sae <dir>', "an SAE folder: steer along a latent's decoder row (with --feature)")
    .option(
      '--feature <i>',
      'the latent of --sae (adds coefficient x W_dec[i] at the hook the SAE writes)',
      intArg(0),
    )
    .option('--hook <name>', 'hook point to add the vector at (default with --probe: the probe hook)')
    .option(
      '--coefficient <x>',
      'multiplier of the vector (difference of means: 1 adds it once)',
      numberArg,
      1,
    )
    .option('--max-tokens <n>', 'tokens to generate', intArg(0), 40)
    .option('--seed <n>', 'sampling seed (the same for both runs)', intArg(0), 0)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', temperatureArg, 0)
    .option(PLOT_FLAG, 'next-token probabilities without and with steering')
    .addOption(truncateOption())
    .addHelpText(
      'after',
      `
The vector is added at every position of the prompt and of each generated token.

Examples:
  sonde steer --prompt "Once upon a time, there was a little girl named Lily. One day," \\
    --positive examples/boy-prompts.txt --negative examples/girl-prompts.txt --hook blocks.3.hook_resid_post
  sonde steer --prompt "Lily was sad." --probe probe.json --coefficient 2
  sonde steer --prompt "Once upon a time" --sae my-sae --feature 12 --coefficient 6`,
    )
    .action(async (o: SteerOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      const fit = truncateFlags(o, cmd);
      const prompt = fitText(model, o.prompt, fit, '--prompt', o.maxTokens);
      let vector: Float32Array;
      let hook: string;
      let source: string;
      let norm: number;
      if (o.sae !== undefined || o.feature !== undefined) {
        if (o.sae === undefined || o.feature === undefined)
          throw new UsageError('--sae DIR and --feature I go together');
        if (o.probe || o.positive || o.negative)
          throw new UsageError('give --sae/--feature, --probe or --positive/--negative, not several');
        const d = await featureDirection(loadSaeLens(o.sae), o.feature);
        hook = o.hook ?? d.hook;
        vector = d.vector;
        norm = d.norm;
        source = `latent ${o.feature} of ${o.sae} (its decoder row)`;
      } else if (o.probe) {
        if (o.positive || o.negative) throw new UsageError('give --probe or --positive/--negative, not both');
        const p = loadProbe(o.probe);
        hook = o.hook ?? p.hook;
        let n = 0;
        for (const w of p.weights) n += w * w;
        vector = p.weights.map((w) => w / Math.sqrt(n));
        norm = 1;
        source = `probe ${o.probe} (unit direction)`;
      } else {
        if (!o.positive || !o.negative)
          throw new UsageError('give --positive FILE and --negative FILE, or --probe probe.json');
        if (!o.hook) throw new UsageError('missing --hook NAME');
        hook = o.hook;
        validateHookNames([hook], model.hookNames());
        const dm = await differenceOfMeans(
          model,
          readFittedTexts(model, o.positive, fit, '--positive').ids,
          readFittedTexts(model, o.negative, fit, '--negative').ids,
          hook,
        );
        vector = dm.vector;
        norm = dm.norm;
        source = `difference of means ${o.positive} - ${o.negative}`;
      }
      validateHookNames([hook], model.hookNames());
      const steer = steeringHook(hook, vector, o.coefficient);
      const r = await steeredGeneration(model, prompt, [steer], {
        maxTokens: o.maxTokens,
        seed: o.seed,
        temperature: o.temperature,
      });
      // The continuation: the text after the prompt (or after what --truncate kept of it).
      const kept = model.decode(prompt);
      const cont = (t: string) =>
        t.startsWith(o.prompt) ? t.slice(o.prompt.length) : t.startsWith(kept) ? t.slice(kept.length) : t;
      if (o.plot) await writePlot(o.plot, await nextTokenSpec(model, o.prompt, prompt, steer));
      if (g.json) {
        printJson({
          model: model.source,
          prompt: o.prompt,
          hook,
          source,
          coefficient: o.coefficient,
          vectorNorm: norm,
          seed: o.seed,
          temperature: o.temperature,
          unsteered: cont(r.unsteered.text),
          steered: cont(r.steered.text),
        });
        return;
      }
      out(`Steering at ${hook} with ${source}, coefficient ${o.coefficient} (|v| = ${fmt(norm)})`);
      out(`Prompt: ${o.prompt}\n`);
      const a = wrap(cont(r.unsteered.text), 52);
      const b = wrap(cont(r.steered.text), 52);
      out(`${'unsteered'.padEnd(54)}steered (${o.coefficient > 0 ? '+' : ''}${o.coefficient})`);
      out(`${'-'.repeat(52)}  ${'-'.repeat(52)}`);
      for (let i = 0; i < Math.max(a.length, b.length); i++)
        out(`${(a[i] ?? '').padEnd(54)}${b[i] ?? ''}`.trimEnd());
    });
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const w of text.replace(/\s+/g, ' ').trim().split(' ')) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines;
}

async function nextTokenSpec(
  model: Awaited<ReturnType<typeof loadModel>>,
  prompt: string,
  promptIds: number[],
  steer: ReturnType<typeof steeringHook>,
): Promise<TopLevelSpec> {
  const base = await nextTokenLogProbs(model, promptIds);
  const steered = await nextTokenLogProbs(model, promptIds, [steer]);
  const top = new Set<number>();
  for (const lp of [base, steered])
    [...lp.keys()]
      .sort((x, y) => lp[y]! - lp[x]!)
      .slice(0, 8)
      .forEach((i) => top.add(i));
  const ids = [...top];
  const names = model.tokenStrings(ids).map((s) => JSON.stringify(s));
  const values = ids.flatMap((id, i) => [
    { token: names[i], run: 'unsteered', prob: Math.exp(base[id]!) },
    { token: names[i], run: 'steered', prob: Math.exp(steered[id]!) },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // The whole prompt, wrapped (before: its last 60 characters, cut mid-word).
    title: { text: 'Next-token probabilities', subtitle: wrap(`after: ${prompt}`, 70) },
    data: { values },
    width: 420,
    height: { step: 12 },
    mark: 'bar',
    encoding: {
      y: { field: 'token', type: 'nominal', title: null },
      yOffset: { field: 'run' },
      x: { field: 'prob', type: 'quantitative', title: 'probability' },
      color: { field: 'run', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}
