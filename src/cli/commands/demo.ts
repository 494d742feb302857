// sonde demo: a short tour of a model (the built-in stories260K by default) in a few seconds.
import type { Command } from 'commander';
import type { HookedTransformer } from '../../index.js';
import {
  fmt,
  fmtCount,
  fmtPercent,
  fmtShape,
  fmtToken,
  globalsOf,
  loadModel,
  out,
  parameterCount,
  printJson,
  table,
} from '../common.js';
import { reshape, slice } from '../../engine/ops/shape.js';
import { readPredictions } from '../../methods/predictions.js';
import { createProgress } from '../progress.js';
import { summarize } from './cache.js';

const DEMO_PROMPT = 'Once upon a time, there was a little girl named';
const DEMO_TOKENS = 44; // ends the default model's story at a full stop

const NEXT_STEPS = [
  ['sonde generate --prompt "Once upon a time" --temperature 0.8', 'sample a story'],
  ['sonde run --prompt "Once upon a time"', 'predictions and loss at every position'],
  ['sonde cache --hook blocks.0.attn.hook_pattern', 'statistics of any activation'],
  ['sonde hooks --shapes', 'all hook points and their shapes'],
  ['sonde info', 'the full model configuration'],
];

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('a short tour of the model: summary, greedy generation, predictions and an activation')
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalsOf(cmd);
      const t0 = performance.now();
      const model = await loadModel(g);
      const loadMs = performance.now() - t0;
      const progress = createProgress(g);
      const r = await tour(model, {
        onStart: () => progress.start(DEMO_TOKENS, 'generating'),
        onToken: () => progress.increment(),
      });
      progress.stop();
      const elapsedMs = Math.round(performance.now() - t0);
      if (g.json) {
        return printJson({
          ...r,
          loadMs: Math.round(loadMs),
          elapsedMs,
          nextSteps: NEXT_STEPS.map(([c]) => c),
        });
      }
      printTour(r, elapsedMs);
    });
}

async function tour(model: HookedTransformer, cb: { onStart: () => void; onToken: () => void }) {
  const c = model.cfg;
  const tok = model.tokenizer;
  const summary = {
    source: model.source,
    architecture: c.architecture,
    family: c.family,
    nLayers: c.nLayers,
    dModel: c.dModel,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    dHead: c.dHead,
    dMlp: c.dMlp,
    act: c.act,
    gatedMlp: c.gatedMlp,
    normalization: c.normalization,
    positional: c.positional,
    vocabSize: c.vocabSize,
    nCtx: c.nCtx,
    params: parameterCount(model),
    tokenizer: tok ? tok.kind : null,
    hookPoints: model.hookNames().length,
  };

  // Greedy generation from BOS.
  cb.onStart();
  const tg = performance.now();
  const start = c.bosTokenId ?? 0;
  const gen = await model.generate([start], { maxTokens: DEMO_TOKENS, temperature: 0, onToken: cb.onToken });
  const generation = {
    prompt: '',
    maxTokens: DEMO_TOKENS,
    temperature: 0,
    text: gen.text,
    tokens: gen.tokens,
    ms: Math.round(performance.now() - tg),
  };

  // Next-token predictions and one activation, on the same prompt.
  const hook = `blocks.${Math.min(2, c.nLayers - 1)}.hook_resid_post`;
  // A tour, not a measurement: on a model with a shorter context, the prompt's last n_ctx tokens.
  const ids = (tok ? model.encode(DEMO_PROMPT) : [start]).slice(-c.nCtx);
  const strings = model.tokenStrings(ids);
  const { logits, cache } = model.runWithCache(ids, { names: [hook] });
  const predictions = {
    prompt: tok ? model.decode(ids) : null,
    tokens: ids,
    top: (await readPredictions(model, reshape(slice(logits, 1, ids.length - 1), [1, -1]), 5))[0]!,
  };
  const s = await summarize(model.cfg, hook, cache.get(hook));
  const activation = {
    hook,
    shape: s.shape,
    dtype: s.dtype,
    mean: s.mean,
    std: s.std,
    min: s.min,
    max: s.max,
    absMax: s.absMax,
    norms: s.norms.map((norm, pos) => ({ pos, token: strings[pos]!, norm })),
  };
  return { model: summary, generation, predictions, activation };
}

function printTour(r: Awaited<ReturnType<typeof tour>>, elapsedMs: number): void {
  const m = r.model;
  out(`Sonde demo · ${m.source}`);
  out();
  out('Model');
  const heads = m.nKvHeads !== m.nHeads ? `${m.nHeads} (${m.nKvHeads} key/value heads)` : String(m.nHeads);
  const rows = [
    ['architecture', `${m.architecture} (${m.family}, ${m.normalization}, ${m.positional} positions)`],
    ['layers', String(m.nLayers)],
    ['d_model', String(m.dModel)],
    ['heads', `${heads}, d_head ${m.dHead}`],
    ['d_mlp', `${m.dMlp} (${m.gatedMlp ? 'gated ' : ''}${m.act})`],
    ['vocab', `${m.vocabSize}${m.tokenizer ? ` (${m.tokenizer} tokenizer)` : ' (no tokenizer)'}`],
    ['context', String(m.nCtx)],
    ['parameters', `${m.params.toLocaleString('en-US')} (${fmtCount(m.params)})`],
    ['hook points', String(m.hookPoints)],
  ];
  for (const line of table(rows)) out(`  ${line}`);
  out();

  const n = r.generation.tokens.length - 1;
  out(`Greedy generation from BOS (${n} token${n === 1 ? '' : 's'}, ${r.generation.ms} ms)`);
  for (const line of wrap(r.generation.text, 100)) out(`  ${line}`);
  out();

  const p = r.predictions;
  out(`Top-5 next tokens after ${p.prompt !== null ? JSON.stringify(p.prompt) : `tokens [${p.tokens}]`}`);
  const predRows = p.top.map((q, i) => [
    `${i + 1}.`,
    fmtToken(q.token),
    fmtPercent(q.prob),
    `logit ${fmt(q.logit)}`,
    bar(q.prob, 1, 20),
  ]);
  for (const line of table(predRows, [true, false, true, false, false])) out(`  ${line}`);
  out();

  const a = r.activation;
  out(`Activation ${a.hook} on the same prompt`);
  out(
    `  shape ${fmtShape(a.shape)} ${a.dtype} · mean ${fmt(a.mean)} · std ${fmt(a.std)} · max |x| ${fmt(a.absMax)}`,
  );
  out('  L2 norm per position:');
  const maxNorm = Math.max(...a.norms.map((n) => n.norm));
  const normRows = a.norms.map((n) => [
    String(n.pos),
    fmtToken(n.token),
    fmt(n.norm),
    bar(n.norm, maxNorm, 24),
  ]);
  for (const line of table(normRows, [true, false, true, false])) out(`    ${line}`);
  out();

  out('Next steps');
  // Without a tokenizer, text prompts become token ids.
  const steps = NEXT_STEPS.map(([c, what]) => [
    m.tokenizer ? c! : c!.replace(/--prompt "[^"]*"/, '--tokens 1,2,3'),
    `# ${what}`,
  ]);
  for (const line of table(steps)) out(`  ${line}`);
  out(
    '  Add --json to any command for machine-readable output, --model DIR for a Hugging Face model folder.',
  );
  out();
  out(`(demo took ${(elapsedMs / 1000).toFixed(2)} s)`);
}

function bar(value: number, max: number, width: number): string {
  const n = max > 0 ? Math.round((value / max) * width) : 0;
  return '█'.repeat(Math.max(0, Math.min(width, n)));
}

/** Splits text into lines of at most `width` characters at spaces (and at its own newlines). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    lines.push(line);
  }
  return lines;
}
