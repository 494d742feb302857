import { describe, expect, it } from 'vitest';
import { circuitSpec, layoutCircuit } from '../../src/plot/circuit.js';
import { renderSvg } from '../../src/plot/vega.js';

describe('circuit drawings', () => {
  it('places nodes by layer (rows) and position (columns), sharing a cell side by side', () => {
    const layout = layoutCircuit([
      { id: 'tok0', layer: -1, position: 0 },
      { id: 'a', layer: 0, position: 1 },
      { id: 'b', layer: 0, position: 1 },
      { id: 'logit', layer: 6, position: 1 },
    ]);
    const at = new Map(layout.nodes.map((p) => [p.id, p]));
    // Two columns of width 1 (two nodes need only 0.9): centres 0.5 and 1.5.
    expect(layout.centres).toEqual([0.5, 1.5]);
    expect(layout.extent).toBe(2);
    expect(at.get('tok0')).toMatchObject({ x: 0.5, y: 0 });
    // Rows are the distinct layers in order; a and b share 80% of column 1, [1.1, 1.9].
    expect(at.get('a')!.y).toBe(1);
    expect(at.get('logit')!.y).toBe(2);
    expect(at.get('a')!.x).toBeCloseTo(1.3);
    expect(at.get('b')!.x).toBeCloseTo(1.7);
  });

  it('widens crowded columns', () => {
    const nodes = Array.from({ length: 5 }, (_, i) => ({ id: `f${i}`, layer: 0, position: 1 }));
    const layout = layoutCircuit([{ id: 't', layer: -1, position: 0 }, ...nodes]);
    // Column 1 holds five nodes: 5 x 0.45 = 2.25 wide, from 1 to 3.25.
    expect(layout.centres[1]).toBeCloseTo(2.125);
    expect(layout.extent).toBeCloseTo(3.25);
    const xs = layout.nodes.filter((n) => n.y === 1).map((n) => n.x);
    expect(xs[1]! - xs[0]!).toBeCloseTo((0.8 * 2.25) / 5);
  });

  it('spreads nodes without positions over the row (head/MLP circuits)', () => {
    const { nodes, extent } = layoutCircuit([
      { id: 'a0.h0', layer: 0 },
      { id: 'a0.h1', layer: 0 },
      { id: 'm0', layer: 0 },
      { id: 'logits', layer: 1 },
    ]);
    expect(extent).toBeCloseTo(1.35);
    const row0 = nodes.filter((p) => p.y === 0).map((p) => p.x);
    [0.225, 0.675, 1.125].forEach((x, i) => expect(row0[i]).toBeCloseTo(x));
    expect(nodes.find((p) => p.id === 'logits')!.x).toBeCloseTo(0.675);
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
      x: 0.5,
      y: 1,
      x2: 0.5,
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
