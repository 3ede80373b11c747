import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runJob } from '../../analytics/jobs.ts';
import { run as runRates } from '../../analytics/rates.ts';
import { run as runReconcile } from '../../analytics/reconcile.ts';
import { readPolicy, run as runRetryPolicy } from '../../analytics/retry-policy.ts';
import { decodeEvent } from '../../contract/validate.ts';
import { createCaseStore } from '../../cases/index.ts';
import { createDetector } from '../../detection/index.ts';
import { dashboardQueries, type DashboardQuery } from '../../dashboards/build.ts';
import { expandMacros } from '../../dashboards/macros.ts';
import { STUCK_AFTER_SECONDS } from '../../dashboards/src/payment-outcomes.ts';
import { toEventRow, type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { snapshotRows, startMetricsRecorder } from '../../metrics/recorder.ts';
import { createIngestMetrics } from '../../metrics/registry.ts';
import { loadRuleSetOrThrow } from '../../rules/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { scenarioNames } from '../../simulator/scenarios.ts';
import { insertRows, queryRows } from '../../storage/clickhouse.ts';
import { createAutomation } from '../../automation/index.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { importStatement } from '../../statements/import.ts';
import { reconcilePeriod } from '../../statements/reconcile.ts';
import { simulatedStatement } from '../../statements/simulated.ts';
import { writeStatement } from '../../statements/write.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scalar, services } from './helpers.ts';

/**
 * Every panel of every dashboard, macros expanded for a concrete range, on the real ClickHouse
 * (18.16 here) with simulator traffic (every attack scenario injected), the cases live detection
 * opens on it (support acknowledging some), the output of the rates, retry-policy and reconcile
 * jobs, recorder snapshots, recorded job runs and a reconciled statement of the alipay traffic: no panel errors or is empty, and each returns
 * the columns its visualisation needs.
 */
const s = services();
const db = s.config.clickhouseDatabase;
const START = Date.UTC(2026, 10, 25, 14, 0);
const DURATION_MS = 10 * 60_000;
const range = { from: new Date(START), to: new Date(START + 15 * 60_000), intervalSeconds: 60 };
const SNAPSHOT_EVERY_S = 10;

interface JsonResult {
  meta: { name: string; type: string }[];
  data: Record<string, unknown>[];
}

async function run(sql: string): Promise<JsonResult> {
  const result = await s.clickhouse.query({ query: sql, format: 'JSON' });
  return (await result.json()) as unknown as JsonResult;
}

/** Simulator traffic with every scenario, decoded and mapped exactly as ingest does; redeliveries dropped as the dedup look-up would. */
function simulatorRows(): EventRow[] {
  const rows = new Map<string, EventRow>();
  let offset = 0;
  for (const item of createTrafficGenerator({ seed: 5, rate: 25, durationMs: DURATION_MS, startMs: START, invalidShare: 0.01, scenarios: scenarioNames })) {
    const decoded = decodeEvent(item.value, 65_536);
    if (!decoded.ok || rows.has(decoded.value.event.event_id)) continue;
    rows.set(decoded.value.event.event_id, toEventRow(decoded.value, offset % 3, offset++, toDateTimeText(START + item.sendAtMs)));
  }
  return [...rows.values()];
}

/**
 * What the recorder would have written over the run: one snapshot every 10 s of counters that
 * grow steadily (300 consumed per snapshot), with a restart half way that resets them to 0.
 */
async function recorderSnapshots() {
  const rows = [];
  let metrics = createIngestMetrics();
  for (let i = 0; i <= DURATION_MS / 1000 / SNAPSHOT_EVERY_S; i++) {
    // A restart: counters start again from 0, and the 300 consumed since are the increase.
    if (i === 30) metrics = createIngestMetrics();
    if (i > 0) {
      metrics.consumed.inc(undefined, 300);
      metrics.stored.inc(undefined, 290);
      metrics.duplicates.inc(undefined, 6);
      metrics.deadLettered.inc({ reason: i % 2 ? 'not valid JSON' : 'contract' }, 2);
      metrics.batches.inc(undefined, 2);
      metrics.insertLatency.observe(0.05);
      metrics.insertLatency.observe(0.15);
      metrics.batchSize.observe(140);
      metrics.batchSize.observe(150);
    }
    for (const partition of [0, 1, 2]) metrics.lag.set(partition * 10 + (i % 5), { topic: s.config.eventsTopic, partition });
    metrics.buffered.set(i % 7);
    metrics.paused.set(i % 13 === 0 ? 1 : 0);
    rows.push(...(await snapshotRows(metrics, 'pipeline-1', new Date(START + i * SNAPSHOT_EVERY_S * 1000))));
  }
  return rows;
}

const events = simulatorRows();
let injectedBreaks: string[] = [];
const queries = dashboardQueries(db);
const expand = (q: DashboardQuery, selected?: Record<string, string[]>) => expandMacros(q.sql, { ...range, variables: q.variables, selected });

/**
 * Cases the way live detection opens them: events land every 30 s (by write time), the detector
 * ticks after each batch, and support works the cases meanwhile: every other case discovered is
 * acknowledged a little later (the first of them resolved after 4 minutes), the rest stay open.
 */
async function ingestAndDetect(): Promise<void> {
  const cases = createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: 'payments.cases' });
  let nowMs = START;
  const detector = createDetector({
    clickhouse: s.clickhouse,
    http: createClickHouseHttp(s.config),
    database: db,
    ruleSet: await loadRuleSetOrThrow(),
    cases,
    logger: silentLogger,
    isLeader: () => true,
    now: () => nowMs,
  });
  const discovered = new Set<string>();
  // Support's actions, applied when their time comes (never on a tick's exact millisecond).
  const work: { atMs: number; caseId: string; status: 'acknowledged' | 'resolved'; note: string }[] = [];
  let next = 0;
  for (nowMs = START + 30_000; nowMs <= range.to.getTime(); nowMs += 30_000) {
    for (const w of work.filter((w) => w.atMs <= nowMs).sort((a, b) => a.atMs - b.atMs)) {
      await cases.setStatus(w.caseId, w.status, 'support-1', w.note, w.atMs, w.status === 'resolved' ? 'refunded' : undefined);
      work.splice(work.indexOf(w), 1);
    }
    const upTo = toDateTimeText(nowMs);
    const batch: EventRow[] = [];
    while (next < events.length && events[next]!.ingested_at <= upTo) batch.push(events[next++]!);
    if (batch.length > 0) await insertRows(s.clickhouse, ident(db, 'payment_events').text, batch);
    await detector.tick();
    for (const c of await cases.list({})) {
      if (discovered.has(c.case_id)) continue;
      const i = discovered.size;
      discovered.add(c.case_id);
      if (i % 2 === 1) continue;
      const openedMs = Date.parse(c.opened_at.replace(' ', 'T') + 'Z');
      work.push({ atMs: openedMs + 20_000 * (1 + i / 2) + 7_000, caseId: c.case_id, status: 'acknowledged', note: 'looking into it' });
      if (i === 0) work.push({ atMs: openedMs + 4 * 60_000 + 7_000, caseId: c.case_id, status: 'resolved', note: 'refunded' });
    }
  }
  expect(next).toBe(events.length);
}

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
  const automationRules = await loadRuleSetOrThrow();
  await ingestAndDetect();
  await insertRows(s.clickhouse, ident(db, 'pipeline_metrics').text, await recorderSnapshots());
  const deps = { clickhouse: s.clickhouse, database: db, logger: silentLogger };
  const at = (min: number) => () => new Date(START + min * 60_000);
  // The retry-policy job twice, as hourly runs would: the second decides against the first.
  for (const to of [START + 10 * 60_000, START + 15 * 60_000]) {
    const policy = await runRetryPolicy(deps, new Date(to), { from: new Date(START), to: new Date(to) });
    expect(policy.status).toBe('ok');
  }
  // The reconcile job at the end of the range: stuck attempts and callback delays.
  expect((await runReconcile(deps, range.to)).status).toBe('ok');
  // Automation (dry-run) records the commands it would have sent for the cases detection opened.
  const automation = createAutomation({
    clickhouse: s.clickhouse,
    database: db,
    producer: {
      send: async () => {
        throw new Error('dry-run publishes nothing');
      },
    },
    config: { ...s.config, automation: 'dry-run' },
    cases: createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: s.config.casesTopic }),
    ruleSet: () => automationRules,
    logger: silentLogger,
  });
  expect((await automation.run(START + 12 * 60_000)).taken).toBeGreaterThan(0);
  // The real rates job fills payment_rates (5-minute buckets) for the Retry & refunds dashboard.
  const rates = await runRates(deps, new Date(START + 20 * 60_000), { from: new Date(START), to: new Date(START + 15 * 60_000) });
  expect(rates.status).toBe('ok');
  // The platform's statement of the alipay traffic (UTC day), one break of each kind injected, imported and reconciled.
  const day = { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) };
  const sent = [
    ...createTrafficGenerator({ seed: 5, rate: 25, durationMs: DURATION_MS, startMs: START, invalidShare: 0.01, scenarios: scenarioNames }),
  ].flatMap((i) => (i.event ? [i.event] : []));
  const statement = simulatedStatement(sent, 'alipay', day, { currencies: true, inject: true });
  injectedBreaks = statement.injected.map((b) => b.kind).sort();
  const file = join(mkdtempSync(join(tmpdir(), 'dashboards-statement-')), 'alipay.csv');
  writeFileSync(file, writeStatement('generic', statement.lines, day));
  expect((await importStatement(deps, { path: file, format: 'generic', channel: 'alipay', period: day, maxBytes: 1 << 30 })).status).toBe('imported');
  expect((await reconcilePeriod(deps, { channel: 'alipay', period: day }, { graceMs: 30 * 60_000, now: new Date(day.toMs + 3_600_000) })).status).toBe(
    'reconciled',
  );
  await runJob(deps, 'rates', { from: new Date(START), to: new Date(START + 5 * 60_000) }, async () => 12, at(5));
  await runJob(
    deps,
    'rates',
    { from: new Date(START + 5 * 60_000), to: new Date(START + 10 * 60_000) },
    async () => {
      throw new Error('ClickHouse said no');
    },
    at(10),
  ).catch(() => {});
});

// No Kafka topics were created, so only the database needs dropping.
afterAll(async () => {
  await s.clickhouse.command({ query: `DROP DATABASE IF EXISTS ${ident(db)}` });
  await s.clickhouse.close();
});

describe('dashboards on the real ClickHouse', () => {
  test('the traffic has what the panels show: outcomes, refunds, stuck attempts', () => {
    expect(events.length).toBeGreaterThan(10_000);
    expect(new Set(events.map((e) => e.status))).toEqual(new Set(['processing', 'succeeded', 'failed', 'timeout']));
    expect(events.some((e) => e.type === 'refund')).toBe(true);
  });

  test('detection opened cases on the injected attacks, support acknowledged some; the retry-policy job wrote a policy', async () => {
    const states = await queryRows<{ rule_id: string; entity_type: string; status: string }>(
      s.clickhouse,
      `SELECT rule_id, entity_type, status FROM ${ident(db, 'cases')}`,
    );
    expect(states.length).toBeGreaterThanOrEqual(3);
    expect(new Set(states.map((c) => c.status))).toEqual(new Set(['open', 'acknowledged', 'resolved']));
    expect(states.some((c) => c.entity_type === 'ip' || c.entity_type === 'device')).toBe(true);
    expect((await readPolicy({ clickhouse: s.clickhouse, database: db })).length).toBeGreaterThan(0);
  });

  test('Risk & cases: time to acknowledge and the open cases table agree with the case store', async () => {
    const panel = (title: string) => queries.find((q) => q.name.startsWith('paysentinel-risk-cases /') && q.name.includes(`/ ${title} /`))!;
    const states = await queryRows<{ case_id: string; status: string; opened_at: string }>(
      s.clickhouse,
      `SELECT case_id, status, opened_at FROM ${ident(db, 'cases')}`,
    );
    const open = states.filter((c) => c.status !== 'resolved').sort((a, b) => b.opened_at.localeCompare(a.opened_at) || a.case_id.localeCompare(b.case_id));
    const table = (await run(expand(panel('Open cases')))).data as { case_id: string; evidence_summary: string; next_step: string }[];
    expect(table.map((r) => r.case_id)).toEqual(open.map((c) => c.case_id));
    for (const r of table) {
      expect(r.evidence_summary).not.toMatch(/[{}"]/);
      expect(r.next_step).not.toBe('');
    }
    const [counts] = (await run(expand(panel('Open and acknowledged')))).data;
    expect([Number(counts!.open_cases), Number(counts!.acknowledged_cases)]).toEqual([
      states.filter((c) => c.status === 'open').length,
      states.filter((c) => c.status === 'acknowledged').length,
    ]);
    // Time to acknowledge computed here from each case's versions: first version no longer open.
    const store = createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: 'payments.cases' });
    const ackSeconds: number[] = [];
    for (const c of states) {
      const first = (await store.history(c.case_id)).find((v) => v.status !== 'open');
      if (first) ackSeconds.push((Date.parse(first.updated_at.replace(' ', 'T') + 'Z') - Date.parse(c.opened_at.replace(' ', 'T') + 'Z')) / 1000);
    }
    expect(ackSeconds.length).toBeGreaterThan(0);
    const bySeverity = (await run(expand(panel('Time to acknowledge by severity')))).data as { acknowledged_cases: string; max_ack_s: number }[];
    expect(bySeverity.reduce((n, r) => n + Number(r.acknowledged_cases), 0)).toBe(ackSeconds.length);
    expect(Math.max(...bySeverity.map((r) => Number(r.max_ack_s)))).toBe(Math.max(...ackSeconds));
  });

  test("Risk & cases: a rule's precision is its cases resolved as real against those resolved as false positives", async () => {
    const panel = queries.find((q) => q.name.startsWith("paysentinel-risk-cases / Rule precision from support's resolutions /"))!;
    const rows = (await run(expand(panel))).data as {
      rule_id: string;
      opened_cases: string;
      real_cases: string;
      false_positives: string;
      rule_precision: number | null;
    }[];
    const resolved = await queryRows<{ rule_id: string; resolution: string }>(
      s.clickhouse,
      `SELECT rule_id, resolution FROM ${ident(db, 'cases')} WHERE status = 'resolved'`,
    );
    // The one case support resolved was refunded: its rule is 100% precise, the others have no verdict yet.
    expect(resolved.map((r) => r.resolution)).toEqual(['refunded']);
    expect(
      rows.filter((r) => r.rule_precision !== null).map((r) => [r.rule_id, Number(r.real_cases), Number(r.false_positives), Number(r.rule_precision)]),
    ).toEqual([[resolved[0]!.rule_id, 1, 0, 1]]);
  });

  test.each(queries.map((q) => [q.name, q] as const))('%s returns what its panel needs', async (_name, q) => {
    const result = await run(expand(q));
    expect(result.data.length, 'rows').toBeGreaterThan(0);
    const types = new Map(result.meta.map((m) => [m.name, m.type]));
    const numeric = (type: string) => /^(Nullable\()?(U?Int\d+|Float\d+|Decimal)/.test(type);
    if (q.shape.kind === 'timeseries') {
      // The plugin needs a DateTime column for the time axis and turns string columns into series labels.
      expect(types.get('time')).toBe("DateTime('UTC')");
      const values = result.meta.filter((m) => m.name !== 'time');
      expect(
        values.some((m) => numeric(m.type)),
        JSON.stringify(result.meta),
      ).toBe(true);
      expect(
        values.every((m) => numeric(m.type) || m.type === 'String'),
        JSON.stringify(result.meta),
      ).toBe(true);
      const times = result.data.map((r) => String(r.time));
      expect(times, 'sorted by time').toEqual([...times].sort());
    } else if (q.shape.kind === 'table') {
      expect([...types.keys()].sort()).toEqual([...q.shape.columns].sort());
    } else {
      expect(result.meta).toHaveLength(1);
    }
  });

  test('with a channel and a merchant picked, every query still runs and only that channel is shown', async () => {
    const channel = events[0]!.channel;
    const merchant = events.find((e) => e.channel === channel)!.merchant_id;
    for (const q of queries) await run(expand(q, { channel: [channel], merchant: [merchant] }));
    const byChannel = queries.find((q) => q.name.endsWith('/ Outcome rates by channel / A'))!;
    const rows = (await run(expand(byChannel, { channel: [channel], merchant: [merchant] }))).data;
    expect(rows.map((r) => r.channel)).toEqual([channel]);
  });

  test('Risk & cases with a channel and merchant picked shows the cases whose entity paid there, and no others', async () => {
    const flagged = queries.find((q) => q.name === 'paysentinel-risk-cases / Top flagged IPs and devices / A')!;
    // The most flagged IP (devices may rank above it now that device spikes are judged against their channel).
    const top = ((await run(expand(flagged))).data as { entity: string }[]).find((r) => r.entity.startsWith('ip '));
    const ip = top!.entity.replace(/^ip /, '');
    const paid = events.find((e) => e.ip === ip && e.occurred_at >= toDateTimeText(range.from.getTime()))!;
    const picked = (await run(expand(flagged, { channel: [paid.channel], merchant: [paid.merchant_id] }))).data.map((r) => r.entity);
    expect(picked).toContain(top!.entity);
    const unused = [...new Set(events.map((e) => e.merchant_id))].find((m) => !events.some((e) => e.ip === ip && e.merchant_id === m))!;
    expect((await run(expand(flagged, { merchant: [unused] }))).data.map((r) => r.entity)).not.toContain(top!.entity);
  });

  test('Reconciliation shows each break injected into the statement once, and the charged-but-not-recorded one first', async () => {
    const panel = (title: string) => queries.find((q) => q.name === `paysentinel-reconciliation / ${title} / A`)!;
    expect(injectedBreaks.length).toBeGreaterThanOrEqual(5);
    const table = (await run(expand(panel('Breaks to work through')))).data as { kind: string }[];
    expect(table.map((r) => r.kind).sort()).toEqual(injectedBreaks);
    expect(table[0]!.kind).toBe('charged_not_recorded');
    expect(Number((await run(expand(panel('Breaks')))).data[0]!.breaks)).toBe(injectedBreaks.length);
    // Another channel picked: nothing of alipay's.
    expect((await run(expand(panel('Breaks to work through'), { channel: ['card'] }))).data).toEqual([]);
  });

  test('payment numbers equal an independent count of the simulator events', async () => {
    const attempts = new Map<string, { first: number; last: EventRow; lastAt: number }>();
    const inRange = (e: EventRow) => e.occurred_at >= toDateTimeText(range.from.getTime()) && e.occurred_at <= toDateTimeText(range.to.getTime());
    for (const e of events.filter((e) => e.type === 'payment' && inRange(e))) {
      const key = `${e.order_id}#${e.attempt}`;
      const at = Date.parse(e.occurred_at.replace(' ', 'T') + 'Z') + e.occurred_ms;
      const a = attempts.get(key);
      const final = e.status !== 'processing';
      if (!a) attempts.set(key, { first: at, last: e, lastAt: at });
      else {
        a.first = Math.min(a.first, at);
        if (at > a.lastAt || (at === a.lastAt && final)) Object.assign(a, { last: e, lastAt: at });
      }
    }
    const all = [...attempts.values()];
    const panel = (title: string) => queries.find((q) => q.name.includes(`/ ${title} /`))!;
    const [attemptsStat] = (await run(expand(panel('Attempts')))).data;
    expect(Number(attemptsStat!.attempts)).toBe(all.length);
    const [stuck] = (await run(expand(panel('Attempts stuck in processing')))).data;
    const cutoff = range.to.getTime() - STUCK_AFTER_SECONDS * 1000;
    expect(Number(stuck!.stuck)).toBe(all.filter((a) => a.last.status === 'processing' && Math.floor(a.first / 1000) * 1000 < cutoff).length);
    const [rate] = (await run(expand(panel('Success rate')))).data;
    expect(rate!.success_rate).toBeCloseTo(all.filter((a) => a.last.status === 'succeeded').length / all.length, 9);
  });

  test('pipeline rates come from counter increases across snapshots, a restart included', async () => {
    const q = queries.find((q) => q.name.includes('/ Consumed, stored and dead-lettered per second /'))!;
    const rows = (await run(expand(q))).data as { time: string; series: string; per_s: number }[];
    const consumed = rows.filter((r) => r.series === 'consumed');
    // 300 per 10 s snapshot is 30/s in every full minute, the minute with the restart too
    // (minutes 0-10: the first and the last hold only part of the snapshots).
    expect(consumed.length).toBe(11);
    for (const r of consumed.slice(1, -1)) expect(r.per_s, r.time).toBeCloseTo(30, 9);
    const dlq = queries.find((q) => q.name.includes('/ Dead-letter reasons /'))!;
    const reasons = (await run(expand(dlq))).data.map((r) => [r.reason, Number(r.messages)]);
    // 2 per snapshot after the first; the first sample of each series in the range has no
    // predecessor, so its 2 are not counted (one series per reason).
    expect(reasons.reduce((sum, [, n]) => sum + (n as number), 0)).toBe(2 * 60 - 2 * 2);
    const latency = queries.find((q) => q.name.includes('/ Insert latency (average) /'))!;
    for (const r of (await run(expand(latency))).data) expect(r.latency_s).toBeCloseTo(0.1, 9);
  });

  test('the recorder writes snapshots that the Pipeline health queries read', async () => {
    const metrics = createIngestMetrics();
    metrics.stored.inc(undefined, 42);
    metrics.paused.set(0);
    const recorder = startMetricsRecorder({
      clickhouse: s.clickhouse,
      database: db,
      metrics,
      logger: silentLogger,
      instance: 'recorder-it',
      intervalMs: 60_000,
    });
    await recorder.record();
    await recorder.stop();
    const table = ident(db, 'pipeline_metrics');
    expect(
      await scalar(s.clickhouse, `SELECT count() FROM ${table} WHERE instance = 'recorder-it' AND name = 'paysentinel_ingest_stored_total' AND value = 42`),
    ).toBe(2);
    const names = await queryRows<{ name: string }>(s.clickhouse, `SELECT DISTINCT name FROM ${table} WHERE instance = 'recorder-it' ORDER BY name`);
    expect(names.map((n) => n.name)).toEqual(
      expect.arrayContaining(['paysentinel_ingest_consumed_total', 'paysentinel_ingest_insert_seconds_count', 'paysentinel_ingest_paused']),
    );
  });
});
