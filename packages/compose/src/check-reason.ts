import type { Location } from './stratafile';

export type CheckReasonKind = 'base' | 'step' | 'structure' | 'package';

/** Why a template is stale: one sentence, at the Stratafile line at fault when there is one. */
export interface CheckReason {
  kind: CheckReasonKind;
  message: string;
  loc?: Location;
}

/** `file:line:col` of a Stratafile place. */
export function where(loc: Location): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}

/** One line per reason, `file:line:col: message` where a Stratafile line is at fault. */
export function formatReason(r: CheckReason): string {
  return r.loc ? `${where(r.loc)}: ${r.message}` : r.message;
}
