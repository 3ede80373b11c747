import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attemptsOfOrdersSql } from '../../analytics/rate-items.ts';
import type { EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { loadMigrations, migrate } from '../../storage/migrations.ts';
import { EARLIEST_KEY, LATEST_KEY, OCCURRED_MS } from '../../storage/event-order.ts';
import { ident, sql, sqlFragment } from '../../storage/sql.ts';
import { eventRow } from '../fixtures/events.ts';
import { services } from './helpers.ts';

/**
 * Migration 027 keeps each attempt's latest result and earliest origin as argMax/argMin over
 * strings whose comparison must equal the comparison of the tuples the definitions name
 * (analytics/DEFINITIONS.md): (occurred_at, occurred_ms, final status first, event id) for the
 * result, (occurred_at, occurred_ms, event id) for the origin. The states the view keeps, read
 * back by the rates job's SQL, are compared with argMax/argMin over those tuples computed from the
 * same stored events: on cases built to break a wrong encoding, and on random events.
 */
const s = services();
const db = s.config.clickhouseDatabase;
const events = ident(db, 'payment_events');

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
});
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(db)}`);
  await s.clickhouse.close();
});

interface Attempt {
  order: string;
  no: number;
  first_ms: number;
  outcome: string;
  code: string;
  amount: number;
  channel: string;
  merchant: string;
  buckets: number[];
}

const toAttempt = (r: Record<string, unknown>): Attempt => ({
  order: String(r.order),
  no: Number(r.no),
  first_ms: Number(r.first_ms),
  outcome: String(r.outcome),
  code: String(r.code),
  amount: Number(r.amount),
  channel: String(r.ch),
  merchant: String(r.me),
  buckets: (r.buckets as (number | string)[]).map(Number).sort((a, b) => a - b),
});

/** What the rates job reads for the orders whose id starts with `prefix`. */
async function fromStates(prefix: string): Promise<Attempt[]> {
  const orders = sqlFragment`SELECT order_id FROM ${events} WHERE startsWith(order_id, ${prefix})`;
  const rows = await queryRows<Record<string, unknown>>(
    s.clickhouse,
    sql`SELECT m_order AS order, m_no AS no, m_first_ms AS first_ms, m_outcome AS outcome, m_code AS code, m_amount AS amount,
       m_channel AS ch, m_merchant AS me, m_buckets AS buckets
     FROM (${attemptsOfOrdersSql(db, orders)}) ORDER BY order, no`,
  );
  return rows.map(toAttempt);
}

/** The same, by the definitions' keys (storage/event-order.ts), straight from the events. */
async function fromEvents(prefix: string): Promise<Attempt[]> {
  const rows = await queryRows<Record<string, unknown>>(
    s.clickhouse,
    sql`SELECT order_id AS order, toUInt8(ifNull(attempt, 0)) AS no, min(${OCCURRED_MS}) AS first_ms,
       argMax(tuple(toString(status), ifNull(failure_code, ''), amount_minor), ${LATEST_KEY}) AS r,
       tupleElement(r, 1) AS outcome, tupleElement(r, 2) AS code, tupleElement(r, 3) AS amount,
       argMin(tuple(channel, merchant_id), ${EARLIEST_KEY}) AS o,
       tupleElement(o, 1) AS ch, tupleElement(o, 2) AS me,
       groupUniqArray(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS buckets
     FROM ${events}
     WHERE type = 'payment' AND startsWith(order_id, ${prefix})
     GROUP BY order, no ORDER BY order, no`,
  );
  return rows.map(toAttempt);
}

const T = Date.UTC(2026, 11, 7, 10, 0, 0);
const row = (atMs: number, f: Partial<EventRow> & Pick<EventRow, 'event_id' | 'order_id' | 'status'>): EventRow => eventRow(atMs, f);

describe('attempt summaries (migration 027) choose what the definitions choose', () => {
  test('ties, separators, old dates and multibyte text', async () => {
    await insertRows(s.clickhouse, events.text, [
      // Same millisecond: the final status wins over processing, whatever the event ids.
      row(T + 500, { event_id: 'b', order_id: 'case-tie', status: 'processing' }),
      row(T + 500, { event_id: 'a', order_id: 'case-tie', status: 'succeeded' }),
      // Same millisecond, both final: the larger event id wins; its code holds the separator.
      row(T + 700, { event_id: 'e1', order_id: 'case-ids', status: 'succeeded', amount_minor: 5 }),
      row(T + 700, { event_id: 'e2', order_id: 'case-ids', status: 'failed', failure_code: 'x:y:', amount_minor: 100 }),
      // 999 ms of one second before 0 ms of the next; the earliest origin holds separators.
      row(T + 999, { event_id: 'z', order_id: 'case-ms', status: 'failed', failure_code: 'card_declined', channel: 'a:b', merchant_id: 'm:1' }),
      row(T + 1000, { event_id: 'a', order_id: 'case-ms', status: 'succeeded', channel: 'other', merchant_id: 'm2' }),
      // 1999 (12 digits of milliseconds) before 2026 (13): the later one wins, the earlier is the origin.
      row(Date.UTC(1999, 0, 1), { event_id: 'old', order_id: 'case-old', status: 'failed', failure_code: 'old', channel: 'c1999' }),
      row(T, { event_id: 'new', order_id: 'case-old', status: 'timeout', failure_code: 'late', channel: 'c2026' }),
      // Multibyte channel and merchant, and a second attempt with an earlier event at the same ms.
      row(T + 10, { event_id: 'm', order_id: 'case-utf', status: 'succeeded', channel: 'ñ支付', merchant_id: 'mé:', amount_minor: 42 }),
      row(T + 10, { event_id: 'l', order_id: 'case-utf', status: 'processing', attempt: 2, channel: '', merchant_id: '' }),
    ]);
    const got = await fromStates('case-');
    expect(got).toEqual(await fromEvents('case-'));
    const by = Object.fromEntries(got.map((a) => [`${a.order}#${a.no}`, a]));
    expect(by['case-tie#1']).toMatchObject({ outcome: 'succeeded' });
    expect(by['case-ids#1']).toMatchObject({ outcome: 'failed', code: 'x:y:', amount: 100 });
    expect(by['case-ms#1']).toMatchObject({ outcome: 'succeeded', code: '', channel: 'a:b', merchant: 'm:1', first_ms: T + 999 });
    expect(by['case-old#1']).toMatchObject({ outcome: 'timeout', code: 'late', channel: 'c1999' });
    expect(by['case-utf#1']).toMatchObject({ outcome: 'succeeded', amount: 42, channel: 'ñ支付', merchant: 'mé:' });
    expect(by['case-utf#2']).toMatchObject({ outcome: 'processing', channel: '', merchant: '' });
  });

  test('random events: the states equal the tuples on every attempt', async () => {
    // mulberry32, seeded: the same events every run.
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
    const statuses = ['processing', 'succeeded', 'failed', 'timeout'] as const;
    const texts = ['', ':', 'a:b', 'x', 'é:', '支付', 'card'];
    const rows: EventRow[] = [];
    for (let i = 0; i < 3000; i++) {
      const status = statuses[rand(4)]!;
      rows.push(
        row(T + rand(4) * 1000 + rand(3) * 499, {
          event_id: `ev${i}`,
          order_id: `rand-${rand(300)}`,
          attempt: 1 + rand(2),
          status,
          failure_code: status === 'failed' || status === 'timeout' ? texts[rand(texts.length)]! : null,
          channel: texts[rand(texts.length)]!,
          merchant_id: texts[rand(texts.length)]!,
          amount_minor: rand(1000),
        }),
      );
    }
    // In several inserts, so the states are merged from several parts.
    for (let i = 0; i < rows.length; i += 700) await insertRows(s.clickhouse, events.text, rows.slice(i, i + 700));
    const got = await fromStates('rand-');
    expect(got.length).toBeGreaterThan(500);
    expect(got).toEqual(await fromEvents('rand-'));
  });

  test("the migration's copy of the stored events gives the same states, and running it again changes nothing", async () => {
    const before = await fromStates('');
    expect(before.length).toBeGreaterThan(500);
    // Only the copy fills the table now (nothing is inserted meanwhile, so the view adds nothing).
    await command(s.clickhouse, `DROP TABLE ${ident(db, 'attempt_summaries').text}`);
    const statements = loadMigrations(db).find((m) => m.version === 27)!.statements;
    for (const st of statements) await command(s.clickhouse, st);
    expect(await fromStates('')).toEqual(before);
    // Again over the copied states: every row is then stored twice.
    for (const st of statements) await command(s.clickhouse, st);
    expect(await fromStates('')).toEqual(await fromEvents(''));
  });
});
