// What the SAE view's parts share: the Panel frame, number formats, opening a latent.
import type { ReactNode } from 'react';
import { setUrlParams } from '../../url-state';

export const fmt = (v: number, d = 3) => v.toFixed(d);
export const pct = (v: number) => `${(v * 100).toPrecision(3)}%`;

/** Opens latent `f` (a history entry, so Back returns to the previous one). */
export function openFeature(f: number): void {
  setUrlParams({ feature: String(f) }, true);
}

export function Panel({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="panel" aria-label={title}>
      <h3>{title}</h3>
      {children}
    </section>
  );
}
