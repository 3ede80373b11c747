import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readReconcile, run, type ReconcileReport } from '../../analytics/reconcile.ts';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { eventRow, nextOffset } from '../fixtures/events.ts';
import { isLater } from '../../storage/event-order.ts';
import { scalar, services } from './helpers.ts';

/**
 * The reconcile job keeps its attempt records up to date from the orders that changed (migration
 * 029). Random traffic is stored and reported once (a rebuild from the events), then late and odd
 * events arrive for many of its orders: callbacks for attempts still processing, corrections to a
 * second final status, processing reports earlier than everything seen (which move an attempt's first
 * event and its callback delay, one of them out of the window), redeliveries, new orders. The report
 * of the next run, made from the changed orders' records, must equal the report made by rebuilding
 * every record from the events.
 */
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 25, 12, 0);
const LATER = NOW + 5 * 60_000;
const LOOKBACK = 2 * HOUR;
const CHANNELS = ['alipay', 'card', 'wechat_pay'];
const FINALS = ['succeeded', 'failed', 'timeout'] as const;

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Attempt {
  order: string;
  no: number;
  channel: string;
  firstMs: number;
  final: string | null;
}

const random = rng(20261208);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
let ids = 0;
const ev = (a: Attempt, atMs: number, status: string): EventRow =>
  eventRow(atMs, {
    event_id: `e${String(ids++).padStart(6, '0')}`,
    order_id: a.order,
    attempt: a.no,
    status,
    channel: a.channel,
    failure_code: status === 'failed' ? 'card_declined' : null,
  });

const attempts: Attempt[] = [];
const first: EventRow[] = [];
for (let o = 0; o < 400; o++) {
  const channel = pick(CHANNELS);
  // Most orders begin in the window, some an hour before it (outside), some minutes before NOW.
  let at = NOW - Math.floor(random() * (LOOKBACK + HOUR));
  for (let no = 1; no <= 1 + Math.floor(random() * 3); no++) {
    const a: Attempt = { order: `o${o}`, no, channel, firstMs: at, final: null };
    attempts.push(a);
    first.push(ev(a, at, 'processing'));
    if (random() < 0.75) {
      a.final = pick(FINALS);
      first.push(ev(a, at + Math.floor(random() * 20_000), a.final));
      if (random() < 0.05) first.push(ev(a, at + 30_000 + Math.floor(random() * 60_000), pick(FINALS.filter((f) => f !== a.final))));
    }
    at += 60_000 + Math.floor(random() * 120_000);
  }
}

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');
const records = ident(s.config.clickhouseDatabase, 'reconcile_records');
const withoutVersion = (r: ReconcileReport) => ({ stuck: r.stuck, changed: r.changed, delays: r.delays });

let before: ReconcileReport;
let incremental: ReconcileReport;
const lateCallbacks: Attempt[] = [];
const corrected: Attempt[] = [];
let movedOut: Attempt;
/** Every event stored before the compared runs. */
const stored: EventRow[] = [];

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  await insertRows(s.clickhouse, events.text, first);
  // Slices of a few hundred events, so the rebuild and the changes each take several statements.
  await run(deps, new Date(NOW), { lookbackMs: LOOKBACK, sliceEvents: 300 });
  before = await readReconcile(deps);

  // Attempts in the windows of both runs.
  const inWindow = attempts.filter((a) => a.firstMs >= LATER - LOOKBACK && a.firstMs < NOW);
  const late: EventRow[] = [];
  for (const a of inWindow.filter((x) => x.final === null).slice(0, 40)) {
    a.final = pick(FINALS);
    lateCallbacks.push(a);
    late.push(ev(a, NOW + 60_000, a.final));
  }
  for (const a of inWindow.filter((x) => x.final !== null && !lateCallbacks.includes(x)).slice(0, 20)) {
    corrected.push(a);
    late.push(ev(a, NOW + 90_000, a.final === 'succeeded' ? 'failed' : 'succeeded'));
  }
  // Processing reports earlier than anything seen of their attempt: the first event and the delay move.
  for (const a of inWindow.filter((x) => x.firstMs > LATER - LOOKBACK + 30 * 60_000).slice(0, 10)) {
    late.push(ev(a, a.firstMs - 7_000, 'processing'));
  }
  // One stuck attempt's first event moves from inside the window to before it.
  movedOut = inWindow.find((x) => x.final === null && x.firstMs < LATER - LOOKBACK + HOUR && !lateCallbacks.includes(x))!;
  late.push(ev(movedOut, NOW - LOOKBACK - 10 * 60_000, 'processing'));
  for (let o = 400; o < 430; o++) {
    const a: Attempt = { order: `o${o}`, no: 1, channel: pick(CHANNELS), firstMs: NOW + 2 * 60_000, final: null };
    late.push(ev(a, a.firstMs, 'processing'), ev(a, a.firstMs + 1_500, 'succeeded'));
  }
  await insertRows(s.clickhouse, events.text, late);
  stored.push(...first, ...late);
  // Redeliveries: the same events stored a second time.
  await insertRows(
    s.clickhouse,
    events.text,
    late.slice(0, 25).map((r) => ({ ...r, kafka_offset: nextOffset() })),
  );
  await run(deps, new Date(LATER), { lookbackMs: LOOKBACK, sliceEvents: 100 });
  incremental = await readReconcile(deps);
}, 120_000);

afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

/**
 * The report computed here from the stored events, as analytics/DEFINITIONS.md defines it
 * (independent of the SQL): stuck and changed attempts and the callback delays of the attempts
 * first seen in [fromMs, toMs).
 */
function reference(rows: readonly EventRow[], fromMs: number, toMs: number) {
  const msOf = (r: EventRow) => Date.parse(`${r.occurred_at.replace(' ', 'T')}Z`) + r.occurred_ms;
  const byAttempt = new Map<string, EventRow[]>();
  for (const r of new Map(rows.map((x) => [x.event_id, x])).values()) {
    const key = `${r.order_id}/${r.attempt ?? 0}`;
    byAttempt.set(key, [...(byAttempt.get(key) ?? []), r]);
  }
  const earliest = (xs: EventRow[]) => [...xs].sort((a, b) => msOf(a) - msOf(b) || Buffer.compare(Buffer.from(a.event_id), Buffer.from(b.event_id)))[0];
  const stuck: unknown[][] = [];
  const changed: unknown[][] = [];
  const delays = new Map<string, number[]>([['', []]]);
  for (const evs of byAttempt.values()) {
    const firstMs = Math.min(...evs.map(msOf));
    if (firstMs < fromMs || firstMs >= toMs) continue;
    const latest = evs.reduce((a, b) =>
      isLater({ occurredAtMs: msOf(b), status: b.status, eventId: b.event_id }, { occurredAtMs: msOf(a), status: a.status, eventId: a.event_id }) ? b : a,
    );
    const finals = evs.filter((e) => e.status !== 'processing');
    const processing = evs.filter((e) => e.status === 'processing');
    const row = [evs[0]!.order_id, evs[0]!.attempt, finals.length ? earliest(finals)!.status : '', latest.status, new Set(finals.map((e) => e.status)).size];
    if (latest.status === 'processing' && firstMs + 15 * 60_000 <= toMs) stuck.push([...row, Math.floor((toMs - firstMs) / 1000)]);
    if (new Set(finals.map((e) => e.status)).size > 1) changed.push([...row, Math.floor((toMs - firstMs) / 1000)]);
    if (processing.length && finals.length) {
      const delay = Math.min(...finals.map(msOf)) - Math.min(...processing.map(msOf));
      if (delay >= 0) {
        const channel = earliest(evs)!.channel;
        for (const c of [channel, '']) delays.set(c, [...(delays.get(c) ?? []), delay]);
      }
    }
  }
  const byKey = (a: unknown[], b: unknown[]) => Buffer.compare(Buffer.from(String(a[0])), Buffer.from(String(b[0]))) || Number(a[1]) - Number(b[1]);
  const pick = (xs: number[], level: number) => xs[Math.floor(level * xs.length)]!;
  return {
    stuck: stuck.sort(byKey),
    changed: changed.sort(byKey),
    delays: [...delays.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([channel, xs]) => {
        const v = [...xs].sort((a, b) => a - b);
        return { channel, attempts: v.length, p50: pick(v, 0.5), p90: pick(v, 0.9), p95: pick(v, 0.95), p99: pick(v, 0.99), max: v.at(-1) };
      }),
  };
}
const asRows = (r: ReconcileReport) => ({
  stuck: r.stuck.map((a) => [a.orderId, a.attempt, a.firstFinal, a.outcome, a.finalStatuses, a.ageSeconds]),
  changed: r.changed.map((a) => [a.orderId, a.attempt, a.firstFinal, a.outcome, a.finalStatuses, a.ageSeconds]),
  delays: r.delays,
});

describe('reconcile records kept from the changed orders', () => {
  test('the late events changed the report', () => {
    const key = (a: { orderId: string; attempt: number }) => `${a.orderId}/${a.attempt}`;
    const stuckBefore = new Set(before.stuck.map(key));
    const stuckAfter = new Set(incremental.stuck.map(key));
    const changedAfter = new Set(incremental.changed.map(key));
    const called = lateCallbacks.filter((a) => stuckBefore.has(`${a.order}/${a.no}`));
    expect(called.length).toBeGreaterThan(10);
    for (const a of called) expect(stuckAfter.has(`${a.order}/${a.no}`)).toBe(false);
    for (const a of corrected) expect(changedAfter.has(`${a.order}/${a.no}`)).toBe(true);
    expect(stuckBefore.has(`${movedOut.order}/${movedOut.no}`)).toBe(true);
    expect([...incremental.stuck, ...incremental.changed].some((a) => key(a) === `${movedOut.order}/${movedOut.no}`)).toBe(false);
    const all = (r: ReconcileReport) => r.delays.find((d) => d.channel === '')!.attempts;
    expect(all(incremental)).toBeGreaterThan(all(before));
  });

  test('equals the report computed here from the events, by the definitions', () => {
    const expected = reference(stored, LATER - LOOKBACK, LATER);
    expect(asRows(incremental)).toEqual(expected);
  });

  test('equals the report rebuilt from the events', async () => {
    // A window reaching back before the records (their margin is an hour) rebuilds every record.
    await run(deps, new Date(LATER), { lookbackMs: LOOKBACK + 2 * HOUR, sliceEvents: 250 });
    await run(deps, new Date(LATER), { lookbackMs: LOOKBACK });
    const rebuilt = await readReconcile(deps);
    expect(withoutVersion(incremental)).toEqual(withoutVersion(rebuilt));
    expect(incremental.stuck.length).toBeGreaterThan(0);
    expect(incremental.changed.length).toBeGreaterThan(20);
  });

  test('a run with no new changes writes no record', async () => {
    const rows = await scalar(s.clickhouse, `SELECT count() FROM ${records.text}`);
    // A redelivery: its order is read again, its records are the same, nothing is written.
    await insertRows(s.clickhouse, events.text, [{ ...first[0]!, kafka_offset: nextOffset() }]);
    await run(deps, new Date(LATER), { lookbackMs: LOOKBACK });
    expect(await scalar(s.clickhouse, `SELECT count() FROM ${records.text}`)).toBe(rows);
  });

  test('an attempt left with a second record (a crash between the two days of an insert) is repaired by the next event of its order', async () => {
    const generation = await scalar(
      s.clickhouse,
      `SELECT written_version FROM ${ident(s.config.clickhouseDatabase, 'analytics_cursors').text} FINAL WHERE job = 'reconcile'`,
    );
    const victim = attempts.find((a) => a.final !== null && a.firstMs >= LATER - LOOKBACK && a.firstMs < NOW - HOUR)!;
    const live = () =>
      scalar(
        s.clickhouse,
        `SELECT count() FROM (SELECT outcome, last_ms, sum(sign) AS w FROM ${records.text} WHERE generation = ${generation} ` +
          `AND order_id = '${victim.order}' AND attempt_no = ${victim.no} GROUP BY outcome, last_ms HAVING w != 0)`,
      );
    expect(await live()).toBe(1);
    // A stray record claiming the attempt is still processing, as if the copy that cancelled it was lost.
    await command(
      s.clickhouse,
      `INSERT INTO ${records.text} (generation, order_id, attempt_no, sign, version, first_ms, last_ms, channel, merchant_id, outcome, first_final, ` +
        `final_statuses, has_delay, delay_ms) VALUES (${generation}, '${victim.order}', ${victim.no}, 1, 1, ${victim.firstMs}, ${victim.firstMs}, ` +
        `'${victim.channel}', 'm1', 'processing', '', 0, 0, 0)`,
    );
    expect(await live()).toBe(2);
    // The order's next event (a redelivery) has its attempts rebuilt: every record the attempt has
    // is cancelled, its one new record written.
    const [again] = first.filter((r) => r.order_id === victim.order && r.attempt === victim.no);
    await insertRows(s.clickhouse, events.text, [{ ...again!, kafka_offset: nextOffset() }]);
    await run(deps, new Date(LATER), { lookbackMs: LOOKBACK });
    expect(await live()).toBe(1);
    const repaired = await readReconcile(deps);
    expect(repaired.stuck.some((a) => a.orderId === victim.order && a.attempt === victim.no)).toBe(false);
    // A run by hand rebuilds every record under a new generation.
    await run(deps, new Date(LATER), { lookbackMs: LOOKBACK, rebuild: true });
    expect(withoutVersion(repaired)).toEqual(withoutVersion(await readReconcile(deps)));
  });
});
