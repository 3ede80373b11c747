import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeBacklog } from '../../bench/backlog.ts';
import { createDetector } from '../../detection/detector.ts';
import { createCaseBook } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import { defaultRulesPath, loadRuleSetOrThrow } from '../../rules/index.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { services } from './helpers.ts';

const s = services();
// The shipped rules plus one that every IP passes the SQL screen for (its second condition is
// not screened) but that never holds: the worst case, every touched IP computed exactly.
const rulesDir = mkdtempSync(join(tmpdir(), 'rules-everyone-'));
cpSync(defaultRulesPath, rulesDir, { recursive: true });
writeFileSync(
  join(rulesDir, 'ip_everyone.json'),
  JSON.stringify({
    ...JSON.parse(readFileSync(join(defaultRulesPath, 'ip_amount_probing.json'), 'utf8')),
    $schema: undefined,
    id: 'ip_everyone',
    conditions: {
      all: [
        { fact: 'ip_attempts_10m', operator: 'greaterThanInclusive', value: 1 },
        { fact: 'ip_distinct_users_10m', operator: 'equal', value: -1 },
      ],
    },
  }),
);
afterAll(async () => {
  rmSync(rulesDir, { recursive: true, force: true });
  await s.cleanup();
});

const DISTINCT_IPS = 1_000_000;
/** The detector's memory bound (README "Detection and cases"): what a tick of 50,000 rows may add on top of the process. */
const BOUND_BYTES = 384 * 1024 * 1024;

/** Runs a detector over the backlog, with RSS sampled every 20 ms; stops when caught up or after `maxTicks`. */
async function runDetector(rulesPath: string | undefined, maxTicks = Infinity) {
  const book = createCaseBook();
  const detector = createDetector({
    clickhouse: s.clickhouse,
    http: createClickHouseHttp(s.config, { timeoutMs: 120_000 }),
    database: s.config.clickhouseDatabase,
    ruleSet: await loadRuleSetOrThrow({ rulesPath }),
    logger: silentLogger,
    isLeader: () => true,
    cases: book,
  });
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 20);
  const started = performance.now();
  try {
    do await detector.tick();
    while (detector.stats().behind && detector.stats().ticks < maxTicks);
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  const seconds = (performance.now() - started) / 1000;
  const stats = detector.stats();
  console.log(
    `detection backlog (${rulesPath ? 'every IP computed exactly' : 'shipped rules'}): ${stats.rows} rows, ${stats.screened} entities passed the screen, ` +
      `${stats.evaluated} evaluated, ${stats.ticks} ticks in ${seconds.toFixed(1)} s (${Math.round(stats.rows / seconds)} rows/s); RSS ` +
      `${(baseline / 2 ** 20).toFixed(0)} MiB before, peak ${(peak / 2 ** 20).toFixed(0)} MiB`,
  );
  return { stats, opened: book.opened, growth: peak - baseline };
}

let rows = 0;
beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  rows = await writeBacklog(createClickHouseHttp(s.config, { timeoutMs: 120_000 }), s.config.clickhouseDatabase, {
    events: DISTINCT_IPS,
    nowMs: Date.now(),
    attackIp: '203.0.113.77',
  });
}, 300_000);

describe('detection memory with 1,000,000 distinct IPs', () => {
  test('worst case, every touched IP passing the screen and computed exactly: memory per tick stays within the same bound', { timeout: 300_000 }, async () => {
    // Memory depends on the rows per tick (50,000), not on how many keys there are: four full ticks
    // show the steady state. It runs first, so its baseline is not raised by the other run's peak.
    const { stats, opened, growth } = await runDetector(rulesDir, 4);
    expect(stats.ticks).toBe(4);
    // 50,000 rows per tick, split evenly over the 3 partitions.
    expect(stats.rows).toBe(4 * 3 * Math.floor(50_000 / 3));
    expect(stats.evaluated).toBeGreaterThanOrEqual(stats.rows - 1);
    expect(opened).toEqual([]);
    expect(growth).toBeLessThan(BOUND_BYTES);
  });
  test(
    'a backlog touching a million IPs, devices, users and orders is worked off within the bound, and the one attack in it is found',
    { timeout: 300_000 },
    async () => {
      expect(rows).toBe(DISTINCT_IPS + 15);
      const { stats, opened, growth } = await runDetector(undefined);
      expect(stats.rows).toBe(rows);
      expect(stats.behind).toBe(false);
      expect(opened.map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`)).toEqual(['ip_amount_probing ip 203.0.113.77']);
      expect(growth).toBeLessThan(BOUND_BYTES);
    },
  );
});
