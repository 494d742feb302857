// One head's attention between the tokens of a prompt: the focused token's weights on every earlier token
// (blue) and the weights later tokens give it (orange). One tab stop; arrow keys move the focused token.
import type { KeyboardEvent } from 'react';
import { inkOn, sequential } from '../colour';
import { tokenText } from '../token-text';

export interface TokenAttentionProps {
  strings: string[];
  /** pattern[query][key] of one head. */
  pattern: number[][];
  query: number | null;
  onQuery: (q: number) => void;
}

/** White – dark orange, for the attention a token receives from later ones. */
function received(w: number): string {
  const t = Math.max(0, Math.min(1, w));
  const to = [166, 54, 3];
  const [r, g, b] = [255, 255, 255].map((x, i) => Math.round(x + (to[i]! - x) * t));
  return `rgb(${r}, ${g}, ${b})`;
}

export function TokenAttention({ strings, pattern, query, onQuery }: TokenAttentionProps) {
  const P = strings.length;
  const onKey = (e: KeyboardEvent) => {
    const step = e.key === 'ArrowLeft' ? -1 : e.key === 'ArrowRight' ? 1 : 0;
    if (step === 0) return;
    e.preventDefault();
    onQuery(Math.max(0, Math.min(P - 1, (query ?? -step) + step)));
  };
  const q = query;
  const strongest = (ws: [number, number][]) => ws.reduce((a, b) => (b[1] > a[1] ? b : a), [-1, -1]);
  const to = q === null ? null : strongest(pattern[q]!.slice(0, q + 1).map((w, k) => [k, w]));
  const from = q === null ? null : strongest(pattern.slice(q).map((row, i) => [q + i, row[q]!]));
  const label = (p: number) => `${p} “${strings[p]}”`;
  return (
    <div className="token-attention">
      <div
        className="tokens"
        role="listbox"
        tabIndex={0}
        aria-label="tokens: arrow keys or hover choose one to see where it attends"
        aria-activedescendant={q === null ? undefined : `attn-token-${q}`}
        onKeyDown={onKey}
      >
        {strings.map((s, p) => {
          const w = q === null ? null : p <= q ? pattern[q]![p]! : pattern[p]![q]!;
          const bg = w === null ? '#fff' : p <= q! ? sequential(w, 1) : received(w);
          return (
            <span
              key={p}
              id={`attn-token-${p}`}
              role="option"
              aria-selected={q === p}
              className="token"
              data-pos={p}
              data-to={q !== null && p <= q ? pattern[q]![p] : ''}
              data-from={q !== null && p >= q ? pattern[p]![q] : ''}
              style={{ background: bg, color: inkOn(bg) }}
              onMouseEnter={() => onQuery(p)}
            >
              {tokenText(s)}
            </span>
          );
        })}
      </div>
      <p className="inspect" aria-live="polite" data-testid="attention-detail">
        {q === null
          ? 'hover or focus a token'
          : `${label(q)} attends most to ${label(to![0])} (${to![1].toFixed(3)}); ` +
            `attended most from ${label(from![0])} (${from![1].toFixed(3)}). ` +
            'Blue: its weight on each earlier token; orange: each later token’s weight on it.'}
      </p>
    </div>
  );
}
