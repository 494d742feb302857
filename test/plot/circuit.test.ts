import { describe, expect, it } from 'vitest';
import { circuitSpec, layoutCircuit } from '../../src/plot/circuit.js';
import { renderSvg } from '../../src/plot/vega.js';

describe('circuit drawings', () => {
  it('places nodes by layer (rows) and position (columns), sharing a cell side by side', () => {
    const placed = layoutCircuit([
      { id: 'tok0', layer: -1, position: 0 },
      { id: 'a', layer: 0, position: 1 },
      { id: 'b', layer: 0, position: 1 },
      { id: 'logit', layer: 6, position: 1 },
    ]);
    const at = new Map(placed.map((p) => [p.id, p]));
    expect(at.get('tok0')).toMatchObject({ x: 0, y: 0 });
    // Rows are the distinct layers in order; a and b split position 1's cell [0.6, 1.4].
    expect(at.get('a')!.y).toBe(1);
    expect(at.get('logit')!.y).toBe(2);
    expect(at.get('a')!.x).toBeCloseTo(0.8);
    expect(at.get('b')!.x).toBeCloseTo(1.2);
  });

  it('spreads nodes without positions over the row (head/MLP circuits)', () => {
    const placed = layoutCircuit([
      { id: 'a0.h0', layer: 0 },
      { id: 'a0.h1', layer: 0 },
      { id: 'm0', layer: 0 },
      { id: 'logits', layer: 1 },
    ]);
    expect(placed.filter((p) => p.y === 0).map((p) => p.x)).toEqual([
      -0.5 + 1 / 6,
      -0.5 + 3 / 6,
      -0.5 + 5 / 6,
    ]);
    expect(placed.find((p) => p.id === 'logits')!.x).toBeCloseTo(0);
  });

  it('draws edges from source to target, width by |weight|, colour by sign', async () => {
    const spec = circuitSpec({
      title: 'test circuit',
      nodes: [
        { id: 'input', layer: -1 },
        { id: 'a0.h1', layer: 0 },
        { id: 'logits', layer: 1 },
      ],
      edges: [
        { source: 'input', target: 'a0.h1', weight: 2 },
        { source: 'a0.h1', target: 'logits', weight: -0.5 },
        { source: 'missing', target: 'logits', weight: 9 },
      ],
    }) as unknown as { layer: { data: { values: Record<string, unknown>[] } }[] };
    const edges = spec.layer[0]!.data.values;
    expect(edges).toHaveLength(2);
    // Weakest first (strong edges are drawn on top), strength relative to the largest |weight|.
    expect(edges[0]).toMatchObject({
      x: 0,
      y: 1,
      x2: 0,
      y2: 2,
      weight: -0.5,
      strength: 0.25,
      sign: 'negative',
    });
    expect(edges[1]).toMatchObject({ y: 0, y2: 1, strength: 1, sign: 'positive' });
    const svg = await renderSvg(spec as never);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('>test circuit</text>');
    expect(svg).toContain('>layer 0</text>');
    expect(svg).toContain('stroke="#c0392b"');
    expect(svg).toContain('stroke="#2f6db5"');
  });
});
