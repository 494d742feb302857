// The prompt box most views share: edits stay local until Run puts them in the address (and runs).
import { useState, type ReactNode } from 'react';
import { setUrlParams, useUrlParams } from '../url-state';

export const DEFAULT_PROMPT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside.';

/** The prompt in the address (the default one when none is there). */
export function usePrompt(): string {
  return useUrlParams().get('prompt') ?? DEFAULT_PROMPT;
}

export function PromptForm({
  children,
  busy = false,
  extra,
}: {
  children?: ReactNode;
  busy?: boolean;
  /** More address parameters the view's own fields (the children) set with the prompt on Run. */
  extra?: () => Record<string, string | null>;
}) {
  const current = usePrompt();
  const [text, setText] = useState(current);
  return (
    <form
      className="prompt-form"
      onSubmit={(e) => {
        e.preventDefault();
        setUrlParams({ ...extra?.(), prompt: text });
      }}
    >
      <label>
        Prompt
        <textarea value={text} rows={2} onChange={(e) => setText(e.target.value)} />
      </label>
      {children}
      <button type="submit" disabled={busy}>
        Run
      </button>
    </form>
  );
}
