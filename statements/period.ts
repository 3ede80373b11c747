import { parseRfc3339 } from '../contract/validate.ts';
import type { Period } from './types.ts';

// A date (midnight UTC) or an RFC 3339 time with its zone.
function parsePoint(text: string): number | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return parseRfc3339(`${text}T00:00:00Z`);
  return parseRfc3339(text);
}

/**
 * `--period`: a UTC day (2026-11-25) or a range FROM..TO, each a date (midnight UTC) or an RFC 3339
 * time with a zone, meaning [FROM, TO): 2026-11-25..2026-11-27 is two days and
 * 2026-11-25T00:00:00+08:00..2026-11-26T00:00:00+08:00 one Beijing day. Null when malformed.
 */
export function parsePeriod(text: string): Period | null {
  const t = text.trim();
  const [a, b, ...rest] = t.split('..');
  if (rest.length > 0 || a === undefined) return null;
  if (b === undefined) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(a)) return null;
    const fromMs = parsePoint(a);
    return fromMs === null ? null : { fromMs, toMs: fromMs + 86_400_000 };
  }
  const fromMs = parsePoint(a);
  const toMs = parsePoint(b);
  return fromMs !== null && toMs !== null && fromMs < toMs ? { fromMs, toMs } : null;
}

/** A period as text: 2026-11-25T00:00:00Z..2026-11-26T00:00:00Z. */
export const formatPeriod = (p: Period): string =>
  `${new Date(p.fromMs).toISOString().replace('.000Z', 'Z')}..${new Date(p.toMs).toISOString().replace('.000Z', 'Z')}`;
