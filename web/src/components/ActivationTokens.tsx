// Tokens highlighted by an activation (SAEDashboard's highlighted text): white → orange by value / max.
// One tab stop; arrow keys or hover select a token, whose value (and `detail`) the caption shows.
import { useState, type KeyboardEvent, type ReactNode } from 'react';
import { inkOn } from '../colour';
import { tokenText } from '../token-text';

export interface ActToken {
  text: string;
  act: number;
  /** Position in its context. */
  pos?: number;
}

/** White – orange for v in [0, max]. */
export function activationColour(v: number, max: number): string {
  const t = max > 0 ? Math.max(0, Math.min(1, v / max)) : 0;
  const mix = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${mix(255, 230)}, ${mix(255, 85)}, ${mix(255, 13)})`;
}

export function ActivationTokens({
  tokens,
  max,
  label,
  center,
  detail,
  testId,
}: {
  tokens: ActToken[];
  /** The value drawn darkest (e.g. the latent's max over the corpus). */
  max: number;
  label: string;
  /** The index of the token this row is about (outlined). */
  center?: number;
  /** More about the selected token (below the row). */
  detail?: (i: number) => ReactNode;
  testId?: string;
}) {
  const [at, setAt] = useState<number | null>(null);
  const onKey = (e: KeyboardEvent) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    setAt(Math.max(0, Math.min(tokens.length - 1, (at ?? (center ?? 0) - step) + step)));
  };
  return (
    <div className="act-row" data-testid={testId}>
      <div
        className="act-tokens"
        role="group"
        aria-label={label}
        tabIndex={0}
        onKeyDown={onKey}
        onMouseLeave={() => setAt(null)}
      >
        {tokens.map((t, i) => {
          const bg = activationColour(t.act, max);
          return (
            <span
              key={i}
              className={`act-token${i === center ? ' center' : ''}${i === at ? ' selected' : ''}`}
              data-i={i}
              data-pos={t.pos ?? i}
              data-act={t.act}
              title={`${JSON.stringify(t.text)}: ${t.act.toFixed(3)}`}
              style={{ background: bg, color: inkOn(bg) }}
              onMouseEnter={() => setAt(i)}
            >
              {tokenText(t.text)}
            </span>
          );
        })}
      </div>
      {at !== null && (
        <div className="inspect" aria-live="polite" data-testid={testId && `${testId}-detail`}>
          “{tokens[at]!.text}” · activation {tokens[at]!.act.toFixed(4)}
          {detail?.(at)}
        </div>
      )}
    </div>
  );
}
