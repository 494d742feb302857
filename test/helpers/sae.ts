// SAEs with known behaviour, shared by the SAE tests.
import { Tensor } from '../../src/engine/tensor.js';
import { saeConfig } from '../../src/sae/config.js';
import { SparseAutoencoder, type SaeParams } from '../../src/sae/sae.js';

/** A standard ReLU SAE with the given encoder [d, dSae] and decoder [dSae, d], zero b_dec. */
export function standardSae(
  hookName: string,
  W_enc: Float32Array,
  W_dec: Float32Array,
  dSae: number,
  b_enc?: Float32Array,
): SparseAutoencoder {
  const d = W_enc.length / dSae;
  const cfg = saeConfig({ architecture: 'standard', dIn: d, dSae, hookName, applyBDecToInput: false });
  const params: SaeParams = new Map([
    ['W_enc', new Tensor(W_enc, [d, dSae])],
    ['W_dec', new Tensor(W_dec, [dSae, d])],
    ['b_enc', b_enc ? new Tensor(b_enc, [dSae]) : Tensor.zeros([dSae])],
    ['b_dec', Tensor.zeros([d])],
  ]);
  return new SparseAutoencoder(cfg, params);
}

/** relu(x), relu(-x) and W_dec = [I; -I]: an exact identity at the hook (recons == x). */
export function identitySae(hookName: string, d = 64): SparseAutoencoder {
  const enc = new Float32Array(d * 2 * d);
  const dec = new Float32Array(2 * d * d);
  for (let j = 0; j < d; j++) {
    enc[j * 2 * d + j] = 1;
    enc[j * 2 * d + d + j] = -1;
    dec[j * d + j] = 1;
    dec[(d + j) * d + j] = -1;
  }
  return standardSae(hookName, enc, dec, 2 * d);
}

/** Replaces an SAE parameter's leading values (tensors are immutable: a new tensor, same shape). */
export async function setParam(sae: SparseAutoencoder, name: string, values: number[]): Promise<void> {
  const t = sae.param(name);
  const data = Float32Array.from(await t.f32());
  data.set(values);
  sae.params.set(name, new Tensor(data, t.shape));
}
