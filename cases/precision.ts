import { ident, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import type { Resolution } from './decide.ts';

/**
 * A rule's precision from support's resolutions: of its cases support resolved as a real
 * problem (confirmed fraud, or the customer had to be contacted or refunded) or as a false
 * positive, the share that were real. `no_action_needed` counts on neither side: nothing was
 * wrong, but the rule did not fire for nothing either. The one definition the rules page and the
 * Risk & cases dashboard both use.
 */
export const REAL_RESOLUTIONS: readonly Resolution[] = ['confirmed_fraud', 'customer_contacted', 'refunded'];
export const FALSE_RESOLUTIONS: readonly Resolution[] = ['false_positive'];

/** SQL aggregates over a resolution column: real_cases, false_positives, no_action_cases and rule_precision (NULL without a verdict). */
export function precisionColumns(column: string): SqlFragment {
  const col = ident(column);
  const real = sqlFragment`countIf(${col} IN ${[...REAL_RESOLUTIONS]})`;
  const noise = sqlFragment`countIf(${col} IN ${[...FALSE_RESOLUTIONS]})`;
  return sqlFragment`${real} AS real_cases, ${noise} AS false_positives, countIf(${col} = 'no_action_needed') AS no_action_cases,
    if(${real} + ${noise} = 0, NULL, ${real} / (${real} + ${noise})) AS rule_precision`;
}

/** The same in code: null when support has resolved none of the cases either way. */
export function precisionOf(real: number, falsePositives: number): number | null {
  return real + falsePositives === 0 ? null : real / (real + falsePositives);
}
