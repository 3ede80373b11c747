import { afterAll, describe, expect, test } from 'vitest';
import { writeBacklog } from '../../bench/backlog.ts';
import { createDetector } from '../../detection/detector.ts';
import { decideCases, type Case } from '../../detection/cases.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow } from '../../rules/index.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

const DISTINCT_IPS = 1_000_000;
/** The detector's memory bound (README "Detection and cases"): what a tick of 50,000 rows may add on top of the process. */
const BOUND_BYTES = 256 * 1024 * 1024;

describe('detection memory with 1,000,000 distinct IPs', () => {
  test('a backlog touching a million IPs, devices, users and orders is worked off within the bound, and the one attack in it is found', { timeout: 600_000 }, async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const http = createClickHouseHttp(s.config, { timeoutMs: 120_000 });
    const nowMs = Date.now();
    const rows = await writeBacklog(http, database, { events: DISTINCT_IPS, nowMs, attackIp: '203.0.113.77' });
    expect(rows).toBe(DISTINCT_IPS + 15);

    const opened: Case[] = [];
    const book = new Map<string, Case>();
    const detector = createDetector({
      clickhouse: s.clickhouse,
      http,
      database,
      ruleSet: await loadRuleSetOrThrow(),
      logger: silentLogger,
      isLeader: () => true,
      cases: {
        async applyHits(hits, at) {
          const result = decideCases(hits, book, at);
          for (const c of [...result.opened, ...result.updated]) book.set(`${c.rule_id}|${c.entity_type}|${c.entity_id}`, c);
          opened.push(...result.opened);
          return result;
        },
      },
    });
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const started = performance.now();
    try {
      do await detector.tick();
      while (detector.stats().behind);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    const seconds = (performance.now() - started) / 1000;
    const stats = detector.stats();
    console.log(`detection backlog: ${stats.rows} rows, ${stats.screened} entities screened, ${stats.evaluated} evaluated, ${stats.ticks} ticks in ${seconds.toFixed(1)} s (${Math.round(stats.rows / seconds)} rows/s); RSS ${(baseline / 2 ** 20).toFixed(0)} MiB before, peak ${(peak / 2 ** 20).toFixed(0)} MiB`);
    expect(stats.rows).toBe(rows);
    // Every IP, device and order was screened (users only when their events fall in the 1-minute window of their features).
    expect(stats.screened).toBeGreaterThan(3 * DISTINCT_IPS);
    expect(opened.map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`)).toEqual(['ip_amount_probing ip 203.0.113.77']);
    expect(peak - baseline).toBeLessThan(BOUND_BYTES);
  });
});
