// What a server opens: several models, SAEs paired with the model their cfg.json names (else the first),
// with a warning when the pairing is doubtful; /api/info lists it all.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildServer, NO_WEB_APP } from '../../src/server/app.js';
import { pairSae, Registry } from '../../src/server/registry.js';
import type { SparseAutoencoder } from '../../src/sae/sae.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-registry-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture SAE whose cfg.json names `model` and reads `hook`. */
function saeFor(name: string, model: string, hook: string, dIn?: number): string {
  const dir = path.join(tmp, name);
  fs.cpSync('test/fixtures/sae/standard-legacy', dir, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'cfg.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(cfg, { model_name: model, hook_name: hook, ...(dIn ? { d_in: dIn } : {}) });
  fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(cfg));
  return dir;
}

describe('SAEs paired with models', () => {
  it('pairs each SAE with the open model its cfg.json names, else the first, and says why in a warning', async () => {
    const named = saeFor('for-induction', 'induction-2l', 'blocks.1.hook_resid_pre');
    const other = saeFor('for-gpt2', 'gpt2', 'blocks.1.hook_resid_pre');
    const r = await Registry.open(['stories260K', 'test/fixtures/induction-2l'], [named, other]);
    const { app } = await buildServer({ registry: r, token: null, webRoot: null });
    const info = (await app.inject({ url: '/api/info', headers: { host: '127.0.0.1' } })).json() as {
      models: { id: string; dir: string }[];
      saes: { id: string; modelId: string; warning: string | null; hook: string }[];
    };
    expect(info.models.map((m) => m.id)).toEqual(['stories260K', 'induction-2l']);
    // Folders are absolute: job workers open them again.
    for (const m of info.models) expect(path.isAbsolute(m.dir)).toBe(true);
    const byId = Object.fromEntries(info.saes.map((s) => [s.id, s]));
    // Named and open: paired with it even though it is not the first. Its d_in (16) does not fit d_model 64.
    expect(byId['for-induction']!.modelId).toBe('induction-2l');
    expect(byId['for-induction']!.warning).toBe(
      "its d_in is 16, but 'blocks.1.hook_resid_pre' of model 'induction-2l' has width 64",
    );
    // Named but not open: the first model, with both reasons.
    expect(byId['for-gpt2']!.modelId).toBe('stories260K');
    expect(byId['for-gpt2']!.warning).toMatch(
      /^this SAE's cfg\.json names model 'gpt2', but the model loaded is 'stories260K'/,
    );
    expect(r.sae('for-induction').modelId).toBe('induction-2l');
    await app.close();
  });

  it('gives no warning to an SAE that fits the model it names (whole head rows count as fitting)', async () => {
    const r = await Registry.open(['test/fixtures/induction-2l', 'stories260K'], []);
    const models = [...r.models.values()];
    // Only the config is read to pair an SAE.
    const sae = (hookName: string, dIn: number) =>
      ({ cfg: { hookName, dIn, metadata: { model_name: 'stories260K' } } }) as unknown as SparseAutoencoder;
    for (const [hook, dIn] of [
      ['blocks.2.hook_resid_pre', 64],
      ['blocks.0.attn.hook_z', 8 * 8], // [n_heads, d_head] flattened
      ['blocks.0.attn.hook_z', 8], // one head
    ] as const) {
      const p = pairSae(sae(hook, dIn), models);
      expect(p.model.id).toBe('stories260K');
      expect(p.warning, `${hook} ${dIn}`).toBeNull();
    }
    expect(pairSae(sae('blocks.9.hook_resid_pre', 64), models).warning).toBe(
      "model 'stories260K' has no hook 'blocks.9.hook_resid_pre'",
    );
  });

  it('says how to build the page when it is missing (a source checkout)', async () => {
    const r = await Registry.open([], []);
    const { app } = await buildServer({ registry: r, token: null, webRoot: null });
    const page = await app.inject({ url: '/', headers: { host: '127.0.0.1' } });
    expect(page.statusCode).toBe(404);
    expect(page.body).toBe(NO_WEB_APP);
    expect(page.body).toMatch(/npm run build:web/);
    await app.close();
  });
});
