import { parseDuration } from '../rules/duration.ts';
import type { RateRow } from './rates.ts';

/**
 * Parses a CLI time: RFC 3339 / ISO 8601 with a zone (2026-11-25T10:00:00Z), `now`, or `now-<duration>`
 * such as now-1h, now-30m, now-2d. Returns null when it is none of these, so the caller can say how to fix it.
 */
export function parseTime(raw: string, now: Date): Date | null {
  const text = raw.trim();
  if (text === 'now') return new Date(now.getTime());
  const relative = /^now-(.+)$/.exec(text);
  if (relative) {
    const ms = parseDuration(relative[1]!);
    return ms === null ? null : new Date(now.getTime() - ms);
  }
  // A zone is required: a bare local time would silently mean the machine's time zone.
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  const zoned = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text);
  if (!dateOnly && !zoned) return null;
  // A plain date is midnight UTC, as Date.parse reads it.
  const ms = Date.parse(text.replace(' ', 'T'));
  return Number.isNaN(ms) ? null : new Date(ms);
}

const pct = (x: number) => (x * 100).toFixed(1) + '%';

const columns: { title: string; get: (r: RateRow) => string }[] = [
  { title: 'attempts', get: (r) => String(r.attempts) },
  { title: 'succeeded', get: (r) => String(r.succeeded) },
  { title: 'failed', get: (r) => String(r.failed) },
  { title: 'timeout', get: (r) => String(r.timeout) },
  { title: 'processing', get: (r) => String(r.processing) },
  { title: 'success%', get: (r) => pct(r.success_rate) },
  { title: 'failure%', get: (r) => pct(r.failure_rate) },
  { title: 'timeout%', get: (r) => pct(r.timeout_rate) },
  { title: 'retry%', get: (r) => pct(r.retry_rate) },
  { title: 'orders', get: (r) => String(r.orders) },
  { title: 'need retry%', get: (r) => pct(r.orders_needing_retry_rate) },
  { title: 'recovered%', get: (r) => `${pct(r.recovered_by_retry_rate)} (${r.orders_recovered}/${r.orders_first_not_succeeded})` },
  { title: 'refund%', get: (r) => `${pct(r.refund_rate)} (${r.orders_refunded}/${r.orders_paid})` },
  { title: 'refund amt%', get: (r) => pct(r.refund_amount_rate) },
];

/** A plain-text table of rate rows, one line per (bucket, value), right-aligned numbers. */
export function formatRatesTable(rows: readonly RateRow[], options: { by: string; bucketed: boolean }): string {
  if (rows.length === 0) return 'No payment attempts in this window.';
  const head = [...(options.bucketed ? ['bucket (UTC)'] : []), ...(options.by === 'all' ? [] : [options.by]), ...columns.map((c) => c.title)];
  const body = rows.map((r) => [
    ...(options.bucketed ? [r.bucketStart.toISOString().slice(0, 16).replace('T', ' ')] : []),
    ...(options.by === 'all' ? [] : [r.value === '' ? '(none)' : r.value]),
    ...columns.map((c) => c.get(r)),
  ]);
  const labels = (options.bucketed ? 1 : 0) + (options.by === 'all' ? 0 : 1);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < labels ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}
