import { counted } from './counted';

/**
 * A step's text (a history entry's `created_by`) on one line: a step with here-documents holds
 * their lines too, and a progress line, a table row or a message shows its first line and how
 * many follow.
 */
export function stepLine(text: string): string {
  const [first = '', ...rest] = text.split('\n');
  return rest.length === 0
    ? text
    : `${first} … (${counted(rest.length, 'more line', 'more lines')})`;
}
