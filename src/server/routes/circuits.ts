// Circuits: discovery (ACDC, EAP, EAP-IG) over clean/corrupt pairs and a prompt's attribution graph, both as
// long jobs; the bundled example pairs; a circuit-tracer graph file uploaded to be viewed.
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { GRAPH_DEFAULTS, promptGraph } from '../../circuits/attribution-prompt.js';
import { placeGraphFile, type GraphFile } from '../../circuits/attribution-file.js';
import { checkOptions, discoverCircuit, DISCOVERY_METHODS } from '../../circuits/discover.js';
import { graphDrawing } from '../../circuits/drawing.js';
import { CIRCUIT_METRICS } from '../../circuits/metric.js';
import { examplePairs, parsePairs } from '../../circuits/pairs.js';
import { defaultTranscodersDir, loadTranscoders } from '../../circuits/transcoder-set.js';
import { UsageError } from '../../errors.js';
import type { ServerContext } from '../app.js';
import { ApiError } from '../errors.js';
import { encodePrompt } from '../input.js';
import { jobKind } from '../jobs/kind.js';
import { LIMITS, modelId, parse, prompt } from '../validate.js';

const nonBlankLines = (text: string) => text.split('\n').filter((l) => l.trim() !== '').length;

export const CircuitParams = z
  .object({
    model: modelId,
    method: z.enum(DISCOVERY_METHODS),
    metric: z.enum(CIRCUIT_METRICS),
    /** The pairs as a .jsonl file holds them: one {"clean", "corrupt", ...} object a line. */
    pairs: z
      .string()
      .min(1, 'no pairs: give one {"clean", "corrupt"} object per line')
      .max(LIMITS.pairsChars, `the pairs are over ${LIMITS.pairsChars} characters`)
      .refine((t) => nonBlankLines(t) <= LIMITS.sweepRows, `more than ${LIMITS.sweepRows} pairs`),
    ablation: z.enum(['corrupt', 'zero']).default('corrupt'),
    threshold: z.number().min(0).optional(),
    top: z.number().int().min(1).optional(),
    scoreThreshold: z.number().min(0).optional(),
    steps: z.number().int().min(1).max(LIMITS.igSteps).optional(),
  })
  .superRefine((p, ctx) => {
    // The library's own check, so a request is refused as the CLI refuses the same flags.
    try {
      checkOptions(p);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      ctx.addIssue({ code: 'custom', message: e.message });
    }
  });

const fraction = z.number().min(0).max(1);

export const AttributionParams = z.object({
  model: modelId,
  prompt,
  nodeThreshold: fraction.default(GRAPH_DEFAULTS.nodeThreshold),
  edgeThreshold: fraction.default(GRAPH_DEFAULTS.edgeThreshold),
  maxLogits: z.number().int().min(1).max(LIMITS.topK).default(GRAPH_DEFAULTS.maxLogits),
  logitProb: fraction.default(GRAPH_DEFAULTS.logitProb),
});

export const circuitsJobs = {
  circuit: jobKind(CircuitParams, async (ctx, p) => {
    const model = ctx.model(p.model);
    const pairs = parsePairs(model, p.pairs, 'pairs');
    const result = await discoverCircuit(model, pairs, {
      method: p.method,
      metric: p.metric,
      ablation: p.ablation,
      threshold: p.threshold,
      top: p.top,
      scoreThreshold: p.scoreThreshold,
      steps: p.steps,
      onProgress: (stage, done, total) => ctx.progress({ done, total, stage }),
    });
    return { ...result, drawing: graphDrawing(result, model.cfg) };
  }),
  'attribution-graph': jobKind(AttributionParams, async (ctx, p) => {
    const model = ctx.model(p.model);
    // The bundled transcoders are the built-in model's; loadTranscoders refuses any other model's shape.
    const dir = defaultTranscodersDir();
    if (model.cfg.attnOnly)
      throw new ApiError(400, 'this model has no MLPs: attribution graphs replace MLPs with transcoders');
    const transcoders = loadTranscoders(dir, model.cfg);
    const ids = encodePrompt(model, p.prompt);
    const g = await promptGraph(model, transcoders, ids, {
      ...p,
      slug: 'sonde-explorer',
      scan: path.basename(dir),
      prompt: p.prompt,
      onProgress: (done, total) => ctx.progress({ done, total, stage: 'attribution' }),
    });
    return { file: g.file, drawing: placeGraphFile(g.file), scores: g.scores };
  }),
};

// A circuit-tracer graph file as uploaded: the fields the view reads are checked, the rest defaulted.
const GraphFileNode = z.object({
  node_id: z.string().max(200),
  feature: z.number(),
  layer: z.string().max(20),
  ctx_idx: z.number().int().min(0),
  feature_type: z.enum(['cross layer transcoder', 'mlp reconstruction error', 'embedding', 'logit']),
  token_prob: z.number().default(0),
  is_target_logit: z.boolean().default(false),
  run_idx: z.number().default(0),
  reverse_ctx_idx: z.number().default(0),
  jsNodeId: z.string().max(200).default(''),
  clerp: z.string().max(2000).default(''),
  influence: z.number().nullable().default(null),
  activation: z.number().nullable().default(null),
});

export const GraphFileSchema = z
  .object({
    metadata: z.object({
      slug: z.string().max(500).default(''),
      scan: z.string().max(500).default(''),
      transcoder_list: z.array(z.string().max(500)).max(1000).default([]),
      prompt_tokens: z.array(z.string().max(500)).max(LIMITS.graphTokens),
      prompt: z.string().max(LIMITS.promptChars * 4),
      node_threshold: z.number().nullable().default(null),
    }),
    qParams: z
      .object({
        pinnedIds: z.array(z.string()).default([]),
        supernodes: z.array(z.array(z.string())).default([]),
        linkType: z.string().default('both'),
        clickedId: z.string().default(''),
        sg_pos: z.string().default(''),
      })
      .default({ pinnedIds: [], supernodes: [], linkType: 'both', clickedId: '', sg_pos: '' }),
    nodes: z.array(GraphFileNode).min(1).max(LIMITS.graphNodes),
    links: z
      .array(z.object({ source: z.string().max(200), target: z.string().max(200), weight: z.number() }))
      .max(LIMITS.graphLinks),
  })
  .superRefine((f, ctx) => {
    const ids = new Set(f.nodes.map((n) => n.node_id));
    const bad = f.links.findIndex((l) => !ids.has(l.source) || !ids.has(l.target));
    if (bad >= 0)
      ctx.addIssue({
        code: 'custom',
        path: ['links', bad],
        message: `links to a node the file does not list (${f.links[bad]!.source} -> ${f.links[bad]!.target})`,
      });
  });

export function registerCircuitsRoutes(app: FastifyInstance, _ctx: ServerContext): void {
  app.get('/api/circuits/examples', async () => examplePairs());
  // A graph file can be far larger than a request's usual limit.
  app.post('/api/attribution-graph/file', { bodyLimit: LIMITS.graphFileBytes }, async (req) => {
    const { file } = parse(z.object({ file: GraphFileSchema }), req.body);
    return { file, drawing: placeGraphFile(file as GraphFile) };
  });
}
