import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import type { AttributionGraph } from '../../src/circuits/attribution-graph.js';
import {
  graphScores,
  nodeInfluence,
  pruneGraph,
  strongestPaths,
  thresholdFor,
} from '../../src/circuits/attribution-influence.js';

// One layer, one position: nodes f0, f1 (features), err, tok, logit (p = 1). Direct effects:
// tok -> f0: 2; tok -> f1: 1, err -> f1: -1; f0 -> logit: 3, f1 -> logit: -1, tok -> logit: 1.
// Normalised rows: f0 = {tok: 1}, f1 = {tok: .5, err: .5}, logit = {f0: .6, f1: .2, tok: .2}.
function tinyGraph(): AttributionGraph {
  const n = 5;
  const A = new Float32Array(n * n);
  const set = (t: number, s: number, v: number) => (A[t * n + s] = v);
  set(0, 3, 2);
  set(1, 3, 1);
  set(1, 2, -1);
  set(4, 0, 3);
  set(4, 1, -1);
  set(4, 3, 1);
  return {
    tokens: [7],
    nLayers: 1,
    nPos: 1,
    features: [
      { layer: 0, pos: 0, index: 0, activation: 1 },
      { layer: 0, pos: 0, index: 1, activation: 1 },
    ],
    logits: [{ token: 9, prob: 1 }],
    n,
    adjacency: A,
  };
}

describe('influence, scores and paths of a graph computed by hand', () => {
  it('influence: w·(Â + Â²)', async () => {
    // wÂ = {f0: .6, f1: .2, tok: .2}; wÂ² adds tok .6 (via f0) + .1 (via f1) and err .1 (via f1).
    const got = Array.from(await nodeInfluence(tinyGraph()));
    [0.6, 0.2, 0.1, 0.9, 0].forEach((v, i) => expect(got[i]).toBeCloseTo(v, 6));
  });

  it('replacement and completeness scores', async () => {
    const s = await graphScores(tinyGraph());
    // Tokens 0.9 against errors 0.1; only f1 takes half its input from an error: 1 - 0.2·0.5/2.8.
    expect(s.replacement).toBeCloseTo(0.9, 6);
    expect(s.completeness).toBeCloseTo(2.7 / 2.8, 6);
  });

  it('thresholds keep the fewest top scores reaching the fraction', () => {
    expect(thresholdFor([0.5, 0.3, 0.2], 0.8)).toBe(0.3);
    expect(thresholdFor([0.5, 0.3, 0.2], 0.81)).toBe(0.2);
    expect(thresholdFor([0.5, 0.3, 0.2], 0.5)).toBe(0.5);
  });

  it('pruning at node threshold 0.7 drops the error node and the feature it feeds alone', async () => {
    // Influence sorted: tok .9, f0 .6, f1 .2, err .1 (of 1.8): f0 and tok hold 0.83 >= 0.7.
    const p = await pruneGraph(tinyGraph(), 0.7, 1);
    expect(Array.from(p.nodes)).toEqual([1, 0, 0, 1, 1]);
    const kept = [...p.edges.keys()].filter((i) => p.edges[i]).map((i) => [Math.floor(i / 5), i % 5]);
    expect(kept).toEqual([
      [0, 3],
      [4, 0],
      [4, 3],
    ]);
    expect(p.cumulativeInfluence[3]).toBeCloseTo(0.9 / 1.8, 6);
    expect(p.cumulativeInfluence[0]).toBeCloseTo(1.5 / 1.8, 6);
  });

  it('strongest paths: the largest products of normalised weights', async () => {
    const g = tinyGraph();
    const all = { nodes: new Uint8Array(5).fill(1), edges: Uint8Array.from(g.adjacency, (v) => (v ? 1 : 0)) };
    const paths = await strongestPaths(g, { ...all, cumulativeInfluence: new Float32Array(5) }, 4, 4);
    expect(paths[0]).toEqual({ nodes: [3, 0, 4], strength: expect.closeTo(0.6, 6) });
    expect(paths[1]).toEqual({ nodes: [3, 4], strength: expect.closeTo(0.2, 6) });
    expect(
      paths
        .slice(2)
        .map((p) => p.nodes)
        .sort(),
    ).toEqual([
      [2, 1, 4],
      [3, 1, 4],
    ]);
    expect(paths[3]!.strength).toBeCloseTo(0.1, 6);
  });
});
