import { describe, expect, it } from 'vitest';
import {
  evaluationDocuments,
  modelMismatch,
  modelName,
  recordedSplit,
  splitData,
  SPLIT_KEY,
} from '../../src/sae/provenance.js';

const docs = Array.from({ length: 40 }, (_, i) => `story ${i}`);

describe('training split', () => {
  it('keeps the last fraction out of training (at least one unit), or none with 0', () => {
    expect(splitData(8192, 0.05, 'rows')).toEqual({ unit: 'rows', total: 8192, train: 7782 });
    expect(splitData(10, 0.01, 'rows').train).toBe(9);
    expect(splitData(10, 0, 'rows').train).toBe(10);
    expect(() => splitData(1, 0.5, 'documents', ['only'])).toThrow(/1 documents: too few to hold out 1/);
    expect(() => splitData(10, 1, 'rows')).toThrow(/\[0, 1\)/);
  });

  it('evaluates on the held-out documents of the corpus the SAE was trained on', () => {
    const meta = { [SPLIT_KEY]: splitData(docs.length, 0.05, 'documents', docs), dataset_path: '/x/a.txt' };
    expect(recordedSplit(meta)?.train).toBe(38);
    // Another path to the same documents (a moved copy) is still recognised by their hash.
    const e = evaluationDocuments(meta, '/elsewhere/copy.txt', docs);
    expect(e.relation).toBe('held-out');
    expect(e.first).toBe(38);
    expect(e.texts).toEqual(['story 38', 'story 39']);
    expect(e.label).toBe("documents 39-40 of 40 (held out of the SAE's training)");
    expect(e.warning).toBeNull();
  });

  it('warns that numbers are in-sample when the SAE trained on this corpus with no split recorded', () => {
    const e = evaluationDocuments({ dataset_path: '/x/a.txt' }, '/x/../x/a.txt', docs);
    expect(e.relation).toBe('training');
    expect(e.texts).toHaveLength(40);
    expect(e.warning).toMatch(/trained on \/x\/\.\.\/x\/a\.txt .*in-sample/);
    const edited = { [SPLIT_KEY]: splitData(40, 0.05, 'documents', docs), dataset_path: '/x/a.txt' };
    // Other documents than the split's (the corpus changed): all of them, no held-out claim.
    const other = evaluationDocuments(edited, '/y/b.txt', docs.slice(1));
    expect(other.relation).toBe('other');
    expect(other.texts).toHaveLength(39);
    expect(evaluationDocuments({}, '/x/a.txt', docs).relation).toBe('unknown');
  });
});

describe('model mismatch', () => {
  it('names both models when the cfg names another one', () => {
    expect(modelMismatch({ model_name: 'gpt2' }, '/pkg/assets/stories260K')).toBe(
      "this SAE's cfg.json names model 'gpt2', but the model loaded is 'stories260K'",
    );
    expect(modelMismatch({ model_name: 'stories260K' }, '/pkg/assets/stories260K')).toBeNull();
    expect(modelMismatch({}, '/pkg/assets/stories260K')).toBeNull();
  });

  it('knows a Hub snapshot by its repo, and TransformerLens names', () => {
    const snap = '/home/u/.cache/huggingface/hub/models--openai-community--gpt2/snapshots/607a30d7/';
    expect(modelName(snap)).toBe('openai-community/gpt2');
    expect(modelMismatch({ model_name: 'gpt2-small' }, snap)).toBeNull();
    expect(modelMismatch({ model_name: 'pythia-70m' }, snap)).toMatch(
      /'pythia-70m'.*'openai-community\/gpt2'/,
    );
  });
});
