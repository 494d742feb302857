/** A token as drawn in a strip: spaces kept visible (non-breaking), newlines as ↵, never empty. */
export function tokenText(s: string): string {
  return s.replace(/\n/g, '↵').replace(/ /g, '\u00a0') || '\u00a0';
}
