import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeRates, readStoredRates, run } from '../../analytics/rates.ts';
import { dimensions, type BucketSize } from '../../analytics/queries.ts';
import { type EventRow } from '../../ingest/records.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { bootstrapStatements, loadMigrations, migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import type { PaymentEvent } from '../../contract/index.ts';
import { rowOfEvent } from '../fixtures/events.ts';
import { services } from './helpers.ts';

/**
 * The incremental rates job on the real ClickHouse: simulator traffic (retries, late callbacks,
 * backdated events, refunds, redeliveries) arrives in batches, in the order it was sent, with a
 * scheduled run after each batch. What the runs stored must equal the one-pass computation from
 * the events (computeRates) and a backfill of the same day, bucket by bucket, in every dimension.
 */
const DAY = Date.UTC(2026, 10, 25);
const START = DAY + 14 * 3_600_000;
const DURATION = 20 * 60_000;
const END = START + DURATION;

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');
const rates = ident(s.config.clickhouseDatabase, 'payment_rates');
const items = [...createTrafficGenerator({ seed: 23, rate: 25, durationMs: DURATION, startMs: START })].filter((i) => i.event);

/** Every row is stored as ingested at the end of the traffic. */
const rowOf = (e: PaymentEvent): EventRow => rowOfEvent(e, START + DURATION);

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
});
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

const latestVersion = async () => Number((await queryRows<{ v: string }>(s.clickhouse, `SELECT max(version) AS v FROM ${rates}`))[0]?.v ?? 0);
const writtenBy = async (version: number) =>
  (
    await queryRows<{ size: string; b: number }>(
      s.clickhouse,
      `SELECT DISTINCT toString(bucket_size) AS size, toUInt32(bucket_start) AS b FROM ${rates} WHERE version = ${version} ORDER BY size, b`,
    )
  ).map((r) => `${r.size} ${new Date(Number(r.b) * 1000).toISOString().slice(11, 16)}`);

async function expectStoredEqualsOnePass(label: string) {
  for (const by of dimensions) {
    for (const bucket of ['5m', 'hour'] as BucketSize[]) {
      const stored = await readStoredRates(deps, { from: new Date(DAY), to: new Date(DAY + 86_400_000), bucket, by });
      const direct = await computeRates(deps, { from: new Date(START - 3_600_000), to: new Date(END + 3_600_000), bucket, by });
      expect(stored, `${label}: ${bucket} by ${by}`).toEqual(direct);
    }
  }
}

describe('incremental rates equal the one-pass computation and a backfill', () => {
  test('the traffic has what makes incremental hard: late and backdated events, retries, refunds, redeliveries', () => {
    // Events sent more than 5 minutes after their attempt's first event: they change a bucket an earlier run wrote.
    const firstOf = new Map<string, number>();
    for (const i of items) {
      const e = i.event!;
      const key = `${e.order_id}#${e.attempt}`;
      if (e.type === 'payment') firstOf.set(key, Math.min(firstOf.get(key) ?? Infinity, Date.parse(e.occurred_at)));
    }
    const late = items.filter((i) => i.event!.type === 'payment' && START + i.sendAtMs - firstOf.get(`${i.event!.order_id}#${i.event!.attempt}`)! > 300_000);
    expect(late.length).toBeGreaterThan(0);
    expect(items.some((i) => Date.parse(i.event!.occurred_at) < START + i.sendAtMs - 1_000)).toBe(true);
    expect(items.some((i) => i.kind === 'redelivery')).toBe(true);
    expect(items.some((i) => i.event?.type === 'refund')).toBe(true);
    expect(items.some((i) => (i.event?.attempt ?? 1) > 1)).toBe(true);
  });

  test('runs after each batch of arrivals; the stored buckets equal the one-pass rates; a backfill gives the same numbers', async () => {
    // Four batches by arrival time, a scheduled run at the end of each, then one after the last bucket closed.
    const cuts = [START + 5 * 60_000 + 20_000, START + 11 * 60_000 + 40_000, START + 16 * 60_000 + 10_000, END + 60_000];
    let sent = 0;
    for (const cut of cuts) {
      const batch = items.filter((i) => START + i.sendAtMs < cut).slice(sent);
      sent += batch.length;
      await insertRows(
        s.clickhouse,
        events.text,
        batch.map((i) => rowOf(i.event!)),
      );
      const r = await run(deps, new Date(cut));
      expect(r.status).toBe('ok');
    }
    expect(sent).toBe(items.length);
    const last = await run(deps, new Date(END + 3_600_000));
    expect(last.status).toBe('ok');
    await expectStoredEqualsOnePass('incremental');

    // A late callback, an hour after the traffic: the next run restates the buckets of that
    // order's attempts (where its items live), not the other buckets of the hour. The runs here
    // re-read no earlier changes (overlap 0) once the server's clock has passed the last batch.
    const serverNow = async () => Number((await queryRows<{ t: number }>(s.clickhouse, 'SELECT toUInt32(now()) AS t'))[0]!.t);
    const settled = await serverNow();
    await expect.poll(serverNow, { timeout: 5_000, interval: 100 }).toBeGreaterThan(settled);
    await run(deps, new Date(END + 3_600_000 + 30_000), { changesOverlapSeconds: 0 });
    const target = items.find(
      (i) => i.event?.type === 'payment' && i.event.status === 'processing' && Date.parse(i.event.occurred_at) >= START + 7 * 60_000,
    )!.event!;
    const orderBuckets = [
      ...new Set(
        items
          .filter((i) => i.event?.order_id === target.order_id && i.event.type === 'payment')
          .map((i) => Math.floor(Date.parse(i.event!.occurred_at) / 300_000) * 300_000),
      ),
    ];
    const before = await latestVersion();
    await insertRows(s.clickhouse, events.text, [
      rowOf({
        ...target,
        event_id: `${target.event_id}-late`,
        status: 'failed',
        failure_code: 'system_error',
        occurred_at: new Date(END + 3_600_000 + 5_000).toISOString(),
      }),
    ]);
    const restate = await run(deps, new Date(END + 3_600_000 + 60_000), { changesOverlapSeconds: 0 });
    expect(restate.status).toBe('ok');
    const version = await latestVersion();
    expect(version).toBeGreaterThan(before);
    const hm = (ms: number) => new Date(ms).toISOString().slice(11, 16);
    const hours = [...new Set(orderBuckets.map((b) => Math.floor(b / 3_600_000) * 3_600_000))];
    expect(await writtenBy(version)).toEqual([...orderBuckets.map((b) => `5m ${hm(b)}`), ...hours.map((h) => `hour ${hm(h)}`)].sort());
    expect(orderBuckets.length).toBeLessThan(4);
    await expectStoredEqualsOnePass('after a late callback');

    // The same day backfilled by hand, its items in slices of at most 2,000 payment events (a
    // quarter of an hour at 5,000 events/s in one statement ran out of memory): progress per hour,
    // every order of the range rebuilt, same numbers.
    const itemsTable = ident(s.config.clickhouseDatabase, 'rate_items');
    const beforeBackfill = Number((await queryRows<{ v: string }>(s.clickhouse, `SELECT max(version) AS v FROM ${itemsTable}`))[0]?.v ?? 0);
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const backfill = await run({ ...deps, logger }, new Date(END + 3_600_000 + 60_000), {
      from: new Date(DAY),
      to: new Date(END + 3_600_000),
      sliceEvents: 2_000,
    });
    expect(backfill.status).toBe('ok');
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.filter((l) => l.msg === 'rates chunk written').length).toBe(16); // 00:00 .. 15:00, the last one up to 15:20
    expect(logged.filter((l) => l.msg === 'rates items built').length).toBe(16);
    const range = `occurred_at >= toDateTime(${DAY / 1000}) AND occurred_at < toDateTime(${(END + 3_600_000) / 1000})`;
    const [payments] = await queryRows<{ n: string }>(s.clickhouse, `SELECT count() AS n FROM ${events} WHERE type = 'payment' AND ${range}`);
    const slices = logged.filter((l) => l.msg === 'rates items slice').map((l) => Number(l.events));
    expect(Math.max(...slices)).toBeLessThanOrEqual(2_000); // no 10-second step of this traffic holds more
    expect(slices.reduce((a, n) => a + n, 0)).toBe(Number(payments!.n));
    expect(slices.length).toBeGreaterThan(Number(payments!.n) / 2_000);
    const [missed] = await queryRows<{ n: string }>(
      s.clickhouse,
      `SELECT count() AS n FROM (SELECT DISTINCT order_id FROM ${events} WHERE type = 'payment' AND ${range})
       WHERE order_id NOT IN (SELECT order_id FROM ${itemsTable} WHERE version > ${beforeBackfill})`,
    );
    expect(Number(missed!.n)).toBe(0);
    await expectStoredEqualsOnePass('backfill');
  });
});

describe('a store that held history before migration 016', () => {
  const old = services();
  const oldDeps = { clickhouse: old.clickhouse, database: old.config.clickhouseDatabase, logger: silentLogger };
  afterAll(async () => {
    await command(old.clickhouse, `DROP DATABASE IF EXISTS ${ident(old.config.clickhouseDatabase)}`);
    await old.clickhouse.close();
  });

  test('the migration folds the history into states, and the first run after it stores the one-pass rates', async () => {
    const db = old.config.clickhouseDatabase;
    for (const statement of bootstrapStatements(db)) await command(old.clickhouse, statement);
    for (const m of loadMigrations(db).filter((m) => m.version < 16)) for (const statement of m.statements) await command(old.clickhouse, statement);
    await insertRows(
      old.clickhouse,
      ident(db, 'payment_events').text,
      items.map((i) => rowOf(i.event!)),
    );
    // Then the upgrade: migrate applies what is missing, 016 among it.
    await migrate(old.clickhouse, db, silentLogger);
    const first = await run(oldDeps, new Date(END + 3_600_000));
    expect(first.status).toBe('ok');
    for (const by of dimensions) {
      const stored = await readStoredRates(oldDeps, { from: new Date(DAY), to: new Date(DAY + 86_400_000), bucket: '5m', by });
      const direct = await computeRates(oldDeps, { from: new Date(START - 3_600_000), to: new Date(END + 3_600_000), bucket: '5m', by });
      expect(stored, `5m by ${by}`).toEqual(direct);
    }
  });
});
