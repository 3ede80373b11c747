import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/index.ts';
import { createCaseBook } from '../../cases/index.ts';
import { createDetector } from '../../detection/detector.ts';
import { toEventRow, type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow } from '../../rules/index.ts';
import { insertRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

/**
 * Live ticks screen only the entities that may have the volume their rules need: those that had
 * half of it when the hot set was computed, and those with enough rows since. Card testing is
 * found whichever side of the hot set's computation its attempts fall on.
 */
describe('volume floors', () => {
  const database = s.config.clickhouseDatabase;
  let offset = 0;
  let seq = 0;
  const attempt = (ip: string, at: number, writtenAt = Date.now() - 1000, status: 'failed' | 'succeeded' = 'failed'): EventRow => {
    const n = seq++;
    const checked = validateEvent({
      event_id: `floor-${n}`,
      occurred_at: new Date(at).toISOString(),
      type: 'payment',
      status,
      ...(status === 'failed' ? { failure_code: 'card_declined' } : { transaction_id: `floor-tx-${n}` }),
      order_id: `floor-order-${n}`,
      attempt: 1,
      amount_minor: 100 + n,
      currency: 'CNY',
      channel: 'card',
      merchant_id: 'm-floor',
      user_id: `floor-user-${n}`,
      device_id: `floor-device-${n}`,
      ip,
    });
    if (!checked.ok) throw new Error(checked.reason);
    return toEventRow(checked.value, 0, offset++, toDateTimeText(writtenAt));
  };
  const store = (rows: EventRow[]) => insertRows(s.clickhouse, ident(database, 'payment_events').text, rows);
  const times = (k: number, ip: string, at: number, writtenAt?: number, status?: 'failed' | 'succeeded') =>
    Array.from({ length: k }, () => attempt(ip, at, writtenAt, status));
  const liveDetector = async (http = createClickHouseHttp(s.config)) => {
    await migrate(s.clickhouse, database, silentLogger);
    const book = createCaseBook();
    const detector = createDetector({
      clickhouse: s.clickhouse,
      http,
      database,
      ruleSet: await loadRuleSetOrThrow(),
      logger: silentLogger,
      isLeader: () => true,
      cases: book,
    });
    return { book, detector };
  };
  /** Ticks with one new row each (an address never seen again) until the hot set is in place. */
  const untilFloorsReady = async (detector: Awaited<ReturnType<typeof liveDetector>>['detector']) => {
    const deadline = Date.now() + 30_000;
    while (!detector.stats().floorsReady && Date.now() < deadline) {
      await store([attempt(`198.51.100.${seq % 250}`, Date.now())]);
      await detector.tick();
    }
    expect(detector.stats().floorsReady).toBe(true);
  };

  test('card testing split across the hot set is found, and entities far below the floor are not screened', async () => {
    const { book, detector } = await liveDetector();
    const t0 = Date.now();
    // Stored before: 12 attempts from A (at least half of 15), 7 from B (below half), and 200
    // addresses with one attempt each, all in the last 3 minutes but written an hour ago, so no
    // tick takes them as new rows: only the hot set's aggregation counts them.
    await store([
      ...times(12, '203.0.113.1', t0 - 180_000, t0 - 3_600_000),
      ...times(7, '203.0.113.2', t0 - 180_000, t0 - 3_600_000),
      ...Array.from({ length: 200 }, (_, i) => attempt(`192.0.2.${i}`, t0 - 120_000, t0 - 3_600_000)),
    ]);
    // A tick with new rows starts the hot set's computation beside the ticks.
    await untilFloorsReady(detector);
    expect(book.opened).toEqual([]);

    // Then: A's last 3 (15 in all: found through the hot set), B's 8 (15 in all: through the
    // counts since), C's 15, and 100 single attempts.
    const before = detector.stats().nearFloor;
    await store([
      ...times(3, '203.0.113.1', Date.now()),
      ...times(8, '203.0.113.2', Date.now()),
      ...times(15, '203.0.113.3', Date.now()),
      ...Array.from({ length: 100 }, (_, i) => attempt(`198.18.0.${i}`, Date.now())),
    ]);
    await detector.tick();
    const found = book.opened
      .filter((c) => c.rule_id === 'ip_amount_probing')
      .map((c) => c.entity_id)
      .sort();
    expect(found).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.3']);
    // Screened by id: the three addresses, nothing of the 100 single attempts (nor their devices and users).
    expect(detector.stats().nearFloor - before).toBe(3);
  });

  test('a busy address far from card testing is read once, then again only when enough failures arrive to make it possible', async () => {
    const { book, detector } = await liveDetector();
    const busy = '203.0.113.50';
    const t0 = Date.now();
    // A shared address: 40 successful payments in the last 2 minutes (written an hour ago).
    await store(times(40, busy, t0 - 120_000, t0 - 3_600_000, 'succeeded'));
    await untilFloorsReady(detector);

    // Touched: screened by id (in the hot set), no rule can hold (no failure), so it is parked.
    let near = detector.stats().nearFloor;
    await store(times(1, busy, Date.now(), undefined, 'succeeded'));
    await detector.tick();
    expect(detector.stats().nearFloor - near).toBe(1);
    expect(detector.stats().parked).toBeGreaterThanOrEqual(1);

    // More successes and a few failures: each tick skips it without reading it.
    near = detector.stats().nearFloor;
    const skips = detector.stats().parkedSkips;
    for (let i = 0; i < 3; i++) {
      await store([...times(2, busy, Date.now(), undefined, 'succeeded'), ...times(2, busy, Date.now())]);
      await detector.tick();
    }
    expect(detector.stats().nearFloor - near).toBe(0);
    expect(detector.stats().parkedSkips - skips).toBe(3);
    expect(book.opened.filter((c) => c.entity_id === busy)).toEqual([]);

    // Card testing from it: 60 declines, so more than half of its attempts fail. The bound lets
    // the rule hold again, it is read, and the case opens at once.
    await store(times(60, busy, Date.now()));
    await detector.tick();
    expect(detector.stats().nearFloor - near).toBe(1);
    expect(book.opened.filter((c) => c.entity_id === busy).map((c) => c.rule_id)).toEqual(['ip_amount_probing']);
  });

  test('keys parked while a rule edit lands are not trusted by the edited rules', async () => {
    // The edit: card testing from a 10% failure rate on (instead of 50%).
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    cpSync(new URL('../../rules/definitions/', import.meta.url), dir, { recursive: true });
    const file = join(dir, 'ip_amount_probing.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"value": 0\.5\b/, '"value": 0.1'));
    const edited = await loadRuleSetOrThrow({ rulesPath: dir });
    const rule = edited.rules.find((r) => r.id === 'ip_amount_probing')!;
    expect(JSON.stringify(rule.conditions)).toContain('0.1');

    // The edit lands while the tick's IP screen runs (the file watcher may call at any time).
    let editDuringScreen = false;
    const base = createClickHouseHttp(s.config);
    const http: typeof base = {
      ...base,
      query: (async (...args: Parameters<typeof base.query>) => {
        if (editDuringScreen && args[2] === 'ip screen') {
          editDuringScreen = false;
          detector.setRuleSet(edited);
        }
        return base.query(...args);
      }) as typeof base.query,
    };
    const { book, detector } = await liveDetector(http);
    const busy = '203.0.113.70';
    const t0 = Date.now();
    // 30 payments in the last 2 minutes, 6 of them declined: 20%, far from 50%, over 10%.
    await store([...times(24, busy, t0 - 120_000, t0 - 3_600_000, 'succeeded'), ...times(6, busy, t0 - 120_000, t0 - 3_600_000)]);
    await untilFloorsReady(detector);
    editDuringScreen = true;
    await store(times(1, busy, Date.now(), undefined, 'succeeded'));
    await detector.tick();
    expect(editDuringScreen).toBe(false);
    expect(book.opened.filter((c) => c.entity_id === busy)).toEqual([]);
    // Under the edited rules, once their hot set is in place, the next success from it is read
    // and opens the case: it is not skipped on bounds taken for the old threshold.
    await untilFloorsReady(detector);
    await store(times(1, busy, Date.now(), undefined, 'succeeded'));
    await detector.tick();
    expect(book.opened.filter((c) => c.entity_id === busy).map((c) => c.rule_id)).toEqual(['ip_amount_probing']);
  });

  test('only new rows that the floor feature counts bring an address towards its floor', async () => {
    const { detector } = await liveDetector();
    const quiet = '203.0.113.60';
    await untilFloorsReady(detector);
    const near = detector.stats().nearFloor;
    // Ten refunds from one address: rows, but no payment attempt, which the floor counts.
    const refunds = times(10, quiet, Date.now()).map((r) => ({
      ...r,
      type: 'refund' as const,
      status: 'succeeded' as const,
      failure_code: null,
      attempt: null,
    }));
    await store(refunds);
    await detector.tick();
    expect(detector.stats().nearFloor - near).toBe(0);
    // Eight attempts do: with them it may have 15 (at most 7 before the set, none then).
    await store(times(8, quiet, Date.now()));
    await detector.tick();
    expect(detector.stats().nearFloor - near).toBe(1);
  });
});
