import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeRates, readStoredRates, run } from '../../analytics/rates.ts';
import { dimensions } from '../../analytics/queries.ts';
import type { PaymentEvent } from '../../contract/index.ts';
import type { EventRow } from '../../ingest/records.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { services } from './helpers.ts';
import { rowOfEvent } from '../fixtures/events.ts';

/**
 * The rates job catching up a backlog larger than one slice, on the real ClickHouse: history
 * stored before its first run and new events arriving between runs. Every run does at most one
 * slice of changes and one of history (budget 0), the newest buckets are complete first, and once
 * caught up the stored rates equal the one-pass computation in every dimension.
 */
const DAY = Date.UTC(2026, 10, 25);
const START = DAY + 10 * 60_000;
const DURATION = 20 * 60_000;
const END = START + DURATION;
const NOW = END + 60_000;

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');
const cursors = ident(s.config.clickhouseDatabase, 'analytics_cursors');
const items = [...createTrafficGenerator({ seed: 31, rate: 25, durationMs: DURATION, startMs: START })].filter((i) => i.event);

/** The stored row of a simulated event, ingested at the end of the traffic. */
const rowOf = (e: PaymentEvent): EventRow => rowOfEvent(e, END);

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
});
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

const serverNow = async () => Number((await queryRows<{ t: number }>(s.clickhouse, 'SELECT toUInt32(now()) AS t'))[0]!.t);
const cursor = async () =>
  (
    await queryRows<{ covered: number; history: number; seen: number }>(
      s.clickhouse,
      `SELECT toUInt32(covered_from) AS covered, toUInt32(history_from) AS history, toUInt32(seen_to) AS seen FROM ${cursors} FINAL WHERE job = 'rates'`,
    )
  )[0]!;
/** Inserts rows in a later second of the server's clock than the previous insert, so each lands in its own second of payment_changes. */
async function insertInItsOwnSecond(rows: EventRow[]) {
  const before = await serverNow();
  await expect.poll(serverNow, { timeout: 5_000, interval: 100 }).toBeGreaterThan(before);
  await insertRows(s.clickhouse, events.text, rows);
}

async function storedVsOnePass(bucket: '5m', by: (typeof dimensions)[number]) {
  const stored = await readStoredRates(deps, { from: new Date(DAY), to: new Date(DAY + 86_400_000), bucket, by });
  const direct = await computeRates(deps, { from: new Date(DAY), to: new Date(Math.floor(NOW / 300_000) * 300_000), bucket, by });
  return { stored, direct };
}

/** The changes' overlap for the runs of this test: short, so the test waits seconds, not the default 15. */
const OVERLAP_S = 2;

describe('a backlog larger than one slice is caught up over several bounded runs', () => {
  test('each run does one slice of changes and one of history, newest buckets first; the end equals the one-pass rates', async () => {
    const cut = START + 17 * 60_000;
    const history = items.filter((i) => START + i.sendAtMs < cut);
    const live = items.filter((i) => START + i.sendAtMs >= cut);
    expect(live.length).toBeGreaterThan(1_000);
    await insertRows(
      s.clickhouse,
      events.text,
      history.map((i) => rowOf(i.event!)),
    );
    // A slice as large as the history's newest closed bucket [END - 5 min, END): the first run completes exactly it.
    const newest = END - 5 * 60_000;
    const sliceEvents = history.filter((i) => i.event!.type === 'payment' && Date.parse(i.event!.occurred_at) >= newest).length;
    const payments = items.filter((i) => i.event!.type === 'payment').length;
    expect(payments / sliceEvents).toBeGreaterThan(3);

    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const runOnce = async () => {
      lines.length = 0;
      const r = await run({ ...deps, logger }, new Date(NOW), { budgetMs: 0, sliceEvents, changesOverlapSeconds: OVERLAP_S });
      expect(r.status).toBe('ok');
      const summary = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'rates run')!;
      expect(summary, 'the run logs what it did').toBeDefined();
      // Bounded: at most one slice of each kind, whatever the backlog.
      expect(summary.change_slices).toBeLessThanOrEqual(1);
      expect(summary.history_steps).toBeLessThanOrEqual(1);
      return summary;
    };

    const first = await runOnce();
    expect(first.history_left).toBe(true);
    expect((await cursor()).covered * 1000).toBe(newest);
    // The newest closed bucket is complete after the first run; nothing older is written yet.
    const { stored, direct } = await storedVsOnePass('5m', 'all');
    expect(stored.map((r) => r.bucketStart.getTime())).toEqual([newest]);
    expect(stored).toEqual(direct.filter((r) => r.bucketStart.getTime() === newest));

    // New events arrive in three inserts, each in its own second: three slices of changes.
    for (let k = 0; k < 3; k++) {
      const part = live.slice(Math.floor((k * live.length) / 3), Math.floor(((k + 1) * live.length) / 3));
      await insertInItsOwnSecond(part.map((i) => rowOf(i.event!)));
    }
    // The cursor stays `overlap` seconds behind the server's clock (inserts may commit late), so a
    // run can only finish the changes once the last insert is that old; wait for it rather than
    // count on the runs taking long enough.
    const lastInsert = await serverNow();
    await expect.poll(serverNow, { timeout: 10_000, interval: 200 }).toBeGreaterThan(lastInsert + OVERLAP_S);
    let runs = 1;
    let summary = first;
    while (summary.history_left || (summary.changes_behind_s as number) > 0) {
      summary = await runOnce();
      runs++;
      expect(runs, 'caught up within 30 runs').toBeLessThan(30);
    }
    expect(runs).toBeGreaterThanOrEqual(4);
    expect((await cursor()).history).toBe(0);
    // Every closed 5-minute bucket (the hour of the traffic is still open at NOW).
    for (const by of dimensions) {
      const { stored, direct } = await storedVsOnePass('5m', by);
      expect(stored.length).toBeGreaterThan(3);
      expect(stored, `5m by ${by}`).toEqual(direct);
    }
  });

  test('a scheduled run finishes the changes of its last minute and a half over budget, in as many slices as they take', async () => {
    // The traffic redelivered in three inserts, each in its own second: three slices of changes.
    const live = items.filter((i) => START + i.sendAtMs >= START + 17 * 60_000);
    const parts = [0, 1, 2].map((k) => live.slice(Math.floor((k * live.length) / 3), Math.floor(((k + 1) * live.length) / 3)));
    for (const part of parts) await insertInItsOwnSecond(part.map((i) => rowOf(i.event!)));
    const lastInsert = await serverNow();
    await expect.poll(serverNow, { timeout: 10_000, interval: 200 }).toBeGreaterThan(lastInsert + OVERLAP_S);
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const sliceEvents = Math.max(...parts.map((p) => p.length));
    // No budget at all: without finishRecentSeconds this run would stop after one slice (above).
    const r = await run({ ...deps, logger }, new Date(NOW), { budgetMs: 0, sliceEvents, changesOverlapSeconds: OVERLAP_S, finishRecentSeconds: 90 });
    expect(r.status).toBe('ok');
    const summary = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'rates run')!;
    expect(summary.change_slices).toBeGreaterThanOrEqual(3);
    expect(summary.changes_behind_s).toBe(0);
    const { stored, direct } = await storedVsOnePass('5m', 'all');
    expect(stored).toEqual(direct);
  });

  test("a step back of the server's clock: the rows stored since are read again", async () => {
    // The cursor as a run would have left it had the server's clock been 10 minutes ahead a minute
    // ago (uptime then 60 s less): rows stored now have seen_at before that cursor's seen_to.
    const [clock] = await queryRows<{ t: number; up: string }>(s.clickhouse, 'SELECT toUInt32(now()) AS t, toUInt64(uptime()) AS up');
    const ahead = Number(clock!.t) + 600;
    const c = await cursor();
    await command(
      s.clickhouse,
      `INSERT INTO ${cursors} (job, seen_to, covered_from, history_from, written_version, server_at, server_uptime, version)
       SELECT job, toDateTime(${ahead - 15}, 'UTC'), covered_from, history_from, written_version,
         toDateTime(${ahead}, 'UTC'), toUInt64(${Math.max(0, Number(clock!.up) - 60)}), version + 1
       FROM ${cursors} FINAL WHERE job = 'rates'`,
    );
    expect(c.history).toBe(0);
    // A late failure for an order of the traffic: it changes the order's bucket.
    const target = items.find((i) => i.event?.type === 'payment' && i.event.status === 'succeeded' && (i.event.attempt ?? 1) === 1)!.event!;
    await insertRows(s.clickhouse, events.text, [
      rowOf({
        ...target,
        event_id: `${target.event_id}-late`,
        status: 'failed',
        failure_code: 'system_error',
        occurred_at: new Date(END - 1_000).toISOString(),
      }),
    ]);
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const r = await run({ ...deps, logger }, new Date(NOW));
    expect(r.status).toBe('ok');
    for (const by of dimensions) {
      const { stored, direct } = await storedVsOnePass('5m', by);
      expect(stored, `5m by ${by}`).toEqual(direct);
    }
    expect(lines.some((l) => l.includes("the server's clock stepped back"))).toBe(true);
  });
});
