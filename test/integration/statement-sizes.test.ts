import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { caseQueries } from '../../cases/index.ts';
import {
  ENTITY_IDS_TABLE,
  entityEventsQuery,
  entityScreenQuery,
  newKeysQuery,
  newRowsQuery,
  positionRange,
  screenHaving,
  screenPlan,
} from '../../detection/index.ts';
import { validateEvent } from '../../contract/index.ts';
import { LOOKUP_IDS_STRUCTURE, LOOKUP_IDS_TABLE, createEventWriter, dedupLookupQuery } from '../../ingest/writer.ts';
import { createIngestMetrics } from '../../metrics/registry.ts';
import { silentLogger } from '../../log/index.ts';
import { parseFeatureCatalog } from '../../rules/catalog.ts';
import { defaultFeaturesPath, defaultRulesPath } from '../../rules/load.ts';
import type { Feature } from '../../rules/schema.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp, MAX_EXTERNAL_QUERY_BYTES } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, sql, toDateTimeText } from '../../storage/sql.ts';
import { MAX_BATCH_ROWS, MAX_TOPIC_PARTITIONS, loadConfig } from '../../config/index.ts';
import { eventRow } from '../fixtures/events.ts';
import { services } from './helpers.ts';

/**
 * Every statement whose size depends on the data, run on the real server (18.16 here) at the
 * largest size the project allows: the dedup look-up at the largest batch, detection's screens
 * and reads at the most partitions a topic may have and a hot set's worth of ids, the case
 * look-up at its slice, the demo's count at its chunk. None may put data in a URL.
 */

const s = services();
const http = createClickHouseHttp(s.config, { timeoutMs: 300_000 });
const db = s.config.clickhouseDatabase;
/** The longest id the contract accepts. */
const longId = (prefix: string, i: number) => `${prefix}-${i}-`.padEnd(128, 'x');
/** The most partitions `KAFKA_TOPIC_PARTITIONS` allows. */
const maxPartitions = MAX_TOPIC_PARTITIONS;
const positions = (offset: number) => new Map(Array.from({ length: maxPartitions }, (_, p) => [p, offset + p] as [number, number]));
const nowSec = Math.floor(Date.now() / 1000);

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
});
afterAll(() => s.cleanup());

describe('statements at the largest size the project allows', () => {
  test('the dedup look-up of the largest batch: ids of the longest length, each in its own second', async () => {
    const maxBatch = MAX_BATCH_ROWS;
    expect(() => loadConfig({ INGEST_BATCH_MAX_ROWS: String(maxBatch + 1) })).toThrow(/INGEST_BATCH_MAX_ROWS/);
    const table = ident(db, 'payment_events');
    // Three of the batch's rows are already stored.
    const rows = Array.from({ length: maxBatch }, (_, i) => ({ event_id: longId('e', i), occurred_at: toDateTimeText((nowSec - 86_400 + i) * 1000) }));
    const stored = [rows[0]!, rows[50_000]!, rows[maxBatch - 1]!];
    await insertRows(
      s.clickhouse,
      table.text,
      stored.map((r) =>
        eventRow(0, {
          event_id: r.event_id,
          occurred_at: r.occurred_at,
          occurred_ms: 0,
          status: 'succeeded',
          order_id: 'o',
          amount_minor: 1,
          channel: 'card',
          merchant_id: 'm',
          ingested_at: r.occurred_at,
        }),
      ),
    );
    const query = dedupLookupQuery(table);
    const found = await http.query<{ event_id: string }>(query, { name: LOOKUP_IDS_TABLE, structure: LOOKUP_IDS_STRUCTURE, rows }, 'dedup look-up');
    expect(found.map((r) => r.event_id).sort()).toEqual(stored.map((r) => r.event_id).sort());
    expect(Buffer.byteLength(query)).toBeLessThan(1_000);
  });

  test('the RowBinary write of the largest batch: look-up keys and rows as binary data, ids of the longest length, each in its own second', async () => {
    const writer = createEventWriter({ http, database: db, logger: silentLogger, metrics: createIngestMetrics() });
    expect(await writer.prepare()).toBe('RowBinary');
    const event = (i: number) => {
      const v = validateEvent({
        event_id: longId('rb', i),
        occurred_at: new Date((nowSec - 2 * 86_400 + i) * 1000).toISOString(),
        type: 'refund',
        status: 'succeeded',
        order_id: longId('o', i),
        amount_minor: i,
        currency: 'CNY',
        channel: 'card',
        merchant_id: longId('m', i),
      });
      if (!v.ok) throw new Error(v.reason);
      return v.value;
    };
    // Three of the batch's rows are already stored.
    const already = [0, 50_000, MAX_BATCH_ROWS - 1];
    expect(await writer.write(already.map((i) => writer.encode(event(i), 1, i)))).toEqual({ stored: 3, duplicates: 0 });
    const rows = Array.from({ length: MAX_BATCH_ROWS }, (_, i) => writer.encode(event(i), 1, i));
    expect(await writer.write(rows)).toEqual({ stored: MAX_BATCH_ROWS - 3, duplicates: 3 });
    const [count] = await queryRows<{ n: string }>(s.clickhouse, `SELECT count() AS n FROM ${ident(db, 'payment_events')} WHERE event_id LIKE 'rb-%'`);
    expect(Number(count!.n)).toBe(MAX_BATCH_ROWS);
  });

  test("the dedup look-up reads only its seconds' granules of a large table (primary-key narrowing with the seconds as data)", async () => {
    // A copy with the same engine and key, filled with a million rows over a day.
    const big = ident(db, 'events_big');
    await command(s.clickhouse, `CREATE TABLE ${big} AS ${ident(db, 'payment_events')}`);
    await command(
      s.clickhouse,
      `INSERT INTO ${big} (event_id, occurred_at, order_id, ingested_at) SELECT toString(number), toDateTime(${nowSec - 86_400}) + intDiv(number, 12), ` +
        `toString(number), now() FROM system.numbers LIMIT 1000000`,
    );
    const keys = [
      { event_id: '17', occurred_at: toDateTimeText((nowSec - 86_400 + 1) * 1000) },
      { event_id: '999990', occurred_at: toDateTimeText((nowSec - 86_400 + 83_332) * 1000) },
    ];
    const lookup = (text: string) =>
      http.query<{ event_id: string }>(text, { name: LOOKUP_IDS_TABLE, structure: LOOKUP_IDS_STRUCTURE, rows: keys }, 'dedup look-up');
    // Two keys, each in one granule of 8,192 rows (three at most if one straddles): the server
    // refuses to read more, so the look-up passes only if its seconds narrowed the scan.
    const limit = "SETTINGS max_rows_to_read = 24576, read_overflow_mode = 'throw'";
    const found = await lookup(`${dedupLookupQuery(big)} ${limit}`);
    expect(found.map((r) => r.event_id).sort()).toEqual(['17', '999990']);
    // The same look-up by id alone reads the whole table, and the same limit stops it.
    const unnarrowed = lookup(`SELECT event_id FROM ${big} WHERE event_id IN (SELECT event_id FROM ${LOOKUP_IDS_TABLE}) ${limit}`);
    await expect(unnarrowed).rejects.toThrow(/Limit for rows to read exceeded: \d+ rows read/);
  });

  test("detection's statements at the most partitions, with a hot set's worth of the longest ids as data", async () => {
    const parsed = parseFeatureCatalog(defaultFeaturesPath, readFileSync(defaultFeaturesPath, 'utf8'));
    if (!parsed.ok) throw new Error('rules/features.json is invalid');
    const features = [...parsed.catalog.facts.values()].filter((f) => f.kind === 'feature').map((f) => f.def as Feature);
    const rules = readdirSync(defaultRulesPath)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(defaultRulesPath, f), 'utf8')) as { entity: string; conditions: unknown });
    const ids = { name: ENTITY_IDS_TABLE, structure: 'id String', rows: Array.from({ length: 50_000 }, (_, i) => ({ id: longId('k', i) })) };
    expect(() => loadConfig({ KAFKA_TOPIC_PARTITIONS: String(maxPartitions + 1) })).toThrow(/KAFKA_TOPIC_PARTITIONS/);
    const position = positionRange(positions(10), positions(1_000_000));
    for (const entity of ['ip', 'device', 'user', 'order'] as const) {
      const plan = screenPlan(features.filter((f) => f.entity === entity));
      const having = screenHaving(
        rules.filter((r) => r.entity === entity),
        plan,
        nowSec * 1000,
      );
      const byId = entityScreenQuery(db, entity, plan, nowSec * 1000, nowSec - 120, position, undefined, having, 86_400_000, 'ids');
      expect(Buffer.byteLength(byId), `${entity} screen by id`).toBeLessThan(MAX_EXTERNAL_QUERY_BYTES);
      await http.query(byId, ids, `${entity} screen by id`);
      await http.query(entityEventsQuery(db, entity, nowSec - 86_400), ids, `${entity} events`);
      await queryRows(s.clickhouse, entityScreenQuery(db, entity, plan, nowSec * 1000, nowSec - 120, position, undefined, having), `${entity} screen`);
    }
    await queryRows(s.clickhouse, newRowsQuery(db, nowSec - 120, positions(10)), 'new rows');
    await queryRows(s.clickhouse, newKeysQuery(db, nowSec - 120, position), 'new keys');
  });

  test('the case look-up at its slice of (rule, entity) keys of the longest ids', async () => {
    const keys = Array.from({ length: 2_000 }, (_, i) => ['ip_amount_probing_'.padEnd(64, 'r'), 'device', longId('d', i)] as [string, string, string]);
    expect(await queryRows(s.clickhouse, caseQueries(db).latestIdsFor(keys), 'latest cases')).toEqual([]);
  });

  test("the demo's count of its run at its chunk of the longest ids", async () => {
    const chunk = Array.from({ length: 5_000 }, (_, i) => longId('demo', i));
    const rows = await queryRows<{ n: string }>(s.clickhouse, sql`SELECT count() AS n FROM ${ident(db, 'payment_events')} WHERE event_id IN ${chunk}`);
    expect(rows).toEqual([{ n: '0' }]);
  });
});
