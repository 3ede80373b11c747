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

/** How an inbox file names its period: a UTC day, or FROM..TO days, optionally in a zone (+0800 for Beijing days). */
const NAMED_PERIOD = /(?<![0-9])(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?(?:([+-])(\d{2})(\d{2}))?(?![0-9])/g;
const ANY_DATE = /(?<![0-9])\d{4}-?\d{2}-?\d{2}(?![0-9])/g;

/**
 * The period an inbox file of a format without a period of its own (generic, stripe) names in its
 * file name: `YYYY-MM-DD` (a UTC day), `YYYY-MM-DD..YYYY-MM-DD` (those days, the second
 * excluded), each optionally followed by a zone offset `+HHMM`/`-HHMM` for days in that zone:
 * `payouts_2026-11-25.csv`, `balance_2026-11-25..2026-11-27+0800.csv`. A name without a period,
 * or with more than one date-like token (which one is the period?), is refused with the reason.
 */
export function periodInFileName(name: string): { ok: true; period: Period } | { ok: false; reason: string } {
  const how =
    'name the file with its period, e.g. balance_2026-11-25.csv (a UTC day), balance_2026-11-25..2026-11-27.csv (two days) ' +
    'or balance_2026-11-25+0800.csv (a Beijing day), or import it with paysentinel statements import --period';
  const found = [...name.matchAll(NAMED_PERIOD)];
  const dates = name.match(ANY_DATE) ?? [];
  if (found.length === 0) return { ok: false, reason: `the file name does not say which period the statement covers: ${how}` };
  const tokens = found.reduce((n, m) => n + (m[2] ? 2 : 1), 0);
  if (found.length > 1 || dates.length > tokens)
    return {
      ok: false,
      reason: `the file name has more than one date (${[...new Set([...found.map((m) => m[0]), ...dates])].join(', ')}), so its period is ambiguous: ${how}`,
    };
  const [, from, to, sign, hh, mm] = found[0]!;
  const offset = sign ? `${sign}${hh}:${mm}` : 'Z';
  const period = parsePeriod(to ? `${from}T00:00:00${offset}..${to}T00:00:00${offset}` : `${from}T00:00:00${offset}..${nextDay(from!)}T00:00:00${offset}`);
  if (!period)
    return {
      ok: false,
      reason: `${JSON.stringify(found[0]![0])} in the file name is not a valid period (a real date, the range's end after its start): ${how}`,
    };
  return { ok: true, period };
}

const nextDay = (date: string): string => {
  const ms = Date.parse(`${date}T00:00:00Z`);
  return Number.isNaN(ms) ? date : new Date(ms + 86_400_000).toISOString().slice(0, 10);
};
