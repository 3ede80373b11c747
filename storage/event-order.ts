import { sqlFragment } from './sql.ts';

/**
 * The one order of an attempt's events, for "its latest status" and "its first event": used by
 * the analytics jobs, the statements reconciliation, the dashboards, detection's stuck scan and
 * the rules' reference computation, so all of them name the same event. (Migrations 016 and 025
 * spell the same tuples out in their materialized views, since a migration is frozen SQL; 027
 * writes them as strings that compare alike, and a test holds it to these keys.)
 *
 * Latest (the argMax key): by occurred_at, then occurred_ms; at an exact tie a final status beats 'processing'
 * (a processing report cannot follow the final one in the same millisecond), then the larger
 * event_id, so the answer never depends on storage or arrival order.
 */
export const LATEST_KEY = sqlFragment`(occurred_at, occurred_ms, status != 'processing', event_id)`;

/** A row's time to the millisecond, from its occurred_at (seconds) and occurred_ms columns. */
export const OCCURRED_MS = sqlFragment`toUInt64(occurred_at) * 1000 + occurred_ms`;

/** First event (the argMin key): by occurred_at, then occurred_ms, then event_id. */
export const EARLIEST_KEY = sqlFragment`(occurred_at, occurred_ms, event_id)`;

/** LATEST_KEY as text: for dashboard SQL (text Grafana sends) and the callers that have not moved to the fragment yet. */
export const LATEST = LATEST_KEY.text;

/** LATEST_KEY in memory: true when `a` comes after `b` (event ids compared as ClickHouse compares strings: by their UTF-8 bytes). */
export function isLater(a: { occurredAtMs: number; status: string; eventId: string }, b: { occurredAtMs: number; status: string; eventId: string }): boolean {
  if (a.occurredAtMs !== b.occurredAtMs) return a.occurredAtMs > b.occurredAtMs;
  const aFinal = a.status !== 'processing';
  const bFinal = b.status !== 'processing';
  if (aFinal !== bFinal) return aFinal;
  return Buffer.compare(Buffer.from(a.eventId), Buffer.from(b.eventId)) > 0;
}
