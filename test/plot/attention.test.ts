import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attentionPatternSpec } from '../../src/plot/attention.js';
import { sonde } from '../helpers/cli.js';

describe('attention pattern plots', () => {
  it('one panel per head, query and key tokens on the axes, weights on a fixed 0..1 scale', () => {
    const pattern = [
      [
        [1, 0],
        [0.25, 0.75],
      ],
      [
        [1, 0],
        [0.5, 0.5],
      ],
    ];
    const spec = attentionPatternSpec({
      hooks: [{ name: 'blocks.0.attn.hook_pattern', pattern }],
      tokens: ['<s>', ' a'],
    }) as unknown as {
      data: { values: { head: string; query: string; key: string; weight: number }[] };
      facet: { field: string };
      spec: { encoding: { x: { sort: string[] }; color: { scale: { domain: number[] } } } };
    };
    expect(spec.data.values).toHaveLength(8);
    expect(
      spec.data.values.find((v) => v.head === 'head 0' && v.query === '1 " a"' && v.key === '0 "<s>"')!
        .weight,
    ).toBe(0.25);
    expect(spec.facet.field).toBe('head');
    expect(spec.spec.encoding.x.sort).toEqual(['0 "<s>"', '1 " a"']);
    expect(spec.spec.encoding.color.scale.domain).toEqual([0, 1]);
  });

  it('sonde cache --hook ...attn.hook_pattern --plot draws the heads (SVG and PNG); other hooks are refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-attn-'));
    const svg = path.join(dir, 'a.svg');
    const png = path.join(dir, 'a.png');
    const hook = ['--prompt', 'Once upon a time', '--hook', 'blocks.1.attn.hook_pattern'];
    const [a, b, bad] = await Promise.all([
      sonde('cache', ...hook, '--plot', svg),
      sonde('cache', ...hook, '--plot', png, '--json'),
      sonde('cache', '--hook', 'blocks.1.hook_resid_post', '--plot', path.join(dir, 'none.svg')),
    ]);
    expect(a.code).toBe(0);
    expect(a.stdout).toContain(`plot: ${svg}`);
    const text = fs.readFileSync(svg, 'utf8');
    expect(text).toContain('>Attention pattern: blocks.1.attn.hook_pattern</text>');
    for (const h of [0, 7]) expect(text).toContain(`>head ${h}</text>`);
    expect(text).toContain('>4 " time"</text>');
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout).plot).toBe(png);
    expect(fs.readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    expect([bad.code, bad.stderr]).toEqual([
      1,
      'sonde: --plot draws attention patterns: give a --hook ending in .attn.hook_pattern, e.g. blocks.0.attn.hook_pattern\n',
    ]);
  }, 60_000);
});
