import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decide, readPolicy, readPreviousPolicy, run, type PolicyEntry, type PolicyPublisher } from '../../analytics/retry-policy.ts';
import { createKafkaPolicyPublisher } from '../../analytics/retry-policy-kafka.ts';
import { recentRuns } from '../../analytics/jobs.ts';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { eventRow } from '../fixtures/events.ts';
import { services } from './helpers.ts';

/**
 * Simulator-like history with known ground truth, on the real ClickHouse: two days of `alipay`
 * payments, 60 orders an hour. A first attempt fails 10% of the time, 50% at 12:00-13:00 UTC (the
 * peak). Failures: network_error (a retry 60 s later succeeds 70% of the time, up to 3 attempts),
 * card_declined (retries 30 s later never succeed), insufficient_funds (a retry succeeds 40% of
 * the time, but the code is not transient) and risk_blocked (never retried).
 */
const DAY = Date.UTC(2026, 10, 20);
const FROM = new Date(DAY);
const TO = new Date(DAY + 3 * 86_400_000);
const NOW = new Date(DAY + 3 * 86_400_000 + 600_000);

// A small seeded generator, so the data (and every number below) is the same on every run.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function event(order: string, attempt: number, atMs: number, status: string, code: string | null, suffix: string): EventRow {
  return eventRow(atMs, { event_id: `${order}-${attempt}-${suffix}`, order_id: order, attempt, status, amount_minor: 1000, failure_code: code });
}

/** One attempt: processing, then its final status 2 s later. Returns the final event's time. */
function attempt(rows: EventRow[], order: string, k: number, atMs: number, ok: boolean, code: string): number {
  rows.push(event(order, k, atMs, 'processing', null, 'p'));
  rows.push(event(order, k, atMs + 2000, ok ? 'succeeded' : 'failed', ok ? null : code, 'f'));
  return atMs + 2000;
}

const truth: Record<string, { retryAfterS: number; pRetry: number; maxAttempts: number }> = {
  network_error: { retryAfterS: 60, pRetry: 0.7, maxAttempts: 3 },
  card_declined: { retryAfterS: 30, pRetry: 0, maxAttempts: 3 },
  insufficient_funds: { retryAfterS: 60, pRetry: 0.4, maxAttempts: 2 },
  risk_blocked: { retryAfterS: 0, pRetry: 0, maxAttempts: 1 },
};

function history(): EventRow[] {
  const rnd = prng(42);
  const rows: EventRow[] = [];
  for (let h = 0; h < 48; h++) {
    const hourStart = DAY + h * 3_600_000;
    const peak = h % 24 === 12;
    for (let i = 0; i < 60; i++) {
      const order = `o${h}-${i}`;
      const t0 = hourStart + i * 55_000;
      if (rnd() >= (peak ? 0.5 : 0.1)) {
        attempt(rows, order, 1, t0, true, '');
        continue;
      }
      const u = rnd();
      const code = u < 0.45 ? 'network_error' : u < 0.75 ? 'card_declined' : u < 0.9 ? 'insufficient_funds' : 'risk_blocked';
      const g = truth[code]!;
      let end = attempt(rows, order, 1, t0, false, code);
      for (let k = 2; k <= g.maxAttempts; k++) {
        const ok = rnd() < g.pRetry;
        end = attempt(rows, order, k, end + g.retryAfterS * 1000, ok, code);
        if (ok) break;
      }
    }
  }
  return rows;
}

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');
const topic = `t${s.config.clickhouseDatabase}.retry-policy`;
const published: PolicyEntry[][] = [];
const recorder: PolicyPublisher = { publish: async (entries) => void published.push([...entries]) };

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  await insertRows(s.clickhouse, events.text, history());
});

afterAll(async () => {
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect();
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

const entry = (policy: PolicyEntry[], code: string) => {
  const e = policy.find((p) => p.channel === 'alipay' && p.failureCode === code);
  if (!e) throw new Error(`no entry for ${code}: ${policy.map((p) => p.failureCode).join(', ')}`);
  return e;
};

describe('retry-policy job on simulated history with known ground truth', () => {
  let first: PolicyEntry[] = [];

  test('first run: the policy follows the evidence and explains every entry', async () => {
    const result = await run({ ...deps, publisher: recorder }, NOW, { from: FROM, to: TO });
    expect(result.status).toBe('ok');
    first = await readPolicy(deps);
    expect(result.rows).toBe(first.length);
    expect(first.map((p) => p.failureCode).sort()).toEqual(['card_declined', 'insufficient_funds', 'network_error', 'risk_blocked']);

    // network_error: retries succeed ~70% after 60 s -> keep retrying, 60 s apart, beyond one retry.
    const net = entry(first, 'network_error');
    expect(net.action).toBe('retry');
    expect(net.maxAttempts).toBe(3);
    expect(net.backoffSeconds).toBe(60);
    const k1 = net.evidence.steps.find((x) => x.k === 1)!;
    expect(k1.retried).toBeGreaterThanOrEqual(100);
    expect(k1.p).toBeGreaterThan(0.6);
    expect(k1.p).toBeLessThan(0.8);
    expect(k1.ciLow).toBeLessThan(k1.p);
    expect(k1.ciHigh).toBeGreaterThan(k1.p);
    // The peak: 12 UTC fails ~50% of first attempts against ~10%: fewer retries there, longer backoff.
    expect(net.peakHours).toEqual([12]);
    expect(net.peakMaxAttempts).toBeLessThan(net.maxAttempts);
    expect(net.peakBackoffSeconds).toBeGreaterThan(net.backoffSeconds);
    expect(net.evidence.peakFailureRates[0]).toBeGreaterThan(2 * net.evidence.channelFailureRate);
    expect(net.reason).toMatch(/network_error on alipay: .*succeeded \d+ of \d+ times.*retry up to 3 attempts, 60 s apart.*peak hours/);

    // card_declined: retries never succeed -> stop.
    const card = entry(first, 'card_declined');
    expect(card.action).toBe('no_retry');
    expect(card.maxAttempts).toBe(1);
    expect(card.peakMaxAttempts).toBe(1);
    expect(card.evidence.steps.find((x) => x.k === 1)).toMatchObject({ succeeded: 0 });
    expect(card.evidence.steps.find((x) => x.k === 1)!.ciHigh).toBeLessThan(0.1);
    expect(card.reason).toMatch(/below 10%: do not retry/);

    // insufficient_funds: retries do succeed sometimes, but the code is never auto-retried.
    const funds = entry(first, 'insufficient_funds');
    expect(funds.evidence.steps.find((x) => x.k === 1)!.succeeded).toBeGreaterThan(0);
    expect(funds).toMatchObject({ action: 'no_retry', retry: false, maxAttempts: 1 });
    expect(funds.reason).toMatch(/not transient/);
    expect(entry(first, 'risk_blocked')).toMatchObject({ action: 'manual_review', retry: false, maxAttempts: 1 });

    for (const e of first) {
      expect(e.change).toBe('new');
      expect(e.reason.length).toBeGreaterThan(20);
      expect(e.reason).not.toContain('\n');
      expect(e.evidence.failures).toBeGreaterThan(0);
    }
    // Published: every entry, once.
    expect(published).toHaveLength(1);
    expect(published[0]!.map((p) => p.failureCode).sort()).toEqual(first.map((p) => p.failureCode).sort());
    expect((await recentRuns(deps, 'retry-policy', 5))[0]).toMatchObject({ status: 'ok' });
  });

  test('hysteresis: a second run on slightly different data does not flip a decision', async () => {
    // 40 more card_declined orders whose retry sometimes succeeds, spread over the non-peak hours,
    // so that P(retry succeeds) is just above 10% but its interval still straddles 10%.
    const card = entry(first, 'card_declined').evidence.steps.find((x) => x.k === 1)!;
    const extra = 40;
    const wins = Math.round(0.125 * (card.retried + extra));
    const rows: EventRow[] = [];
    for (let i = 0; i < extra; i++) {
      const h = [1, 3, 5, 7, 9, 15, 17, 19, 21, 23][i % 10]! + 24 * (i % 2);
      const t0 = DAY + h * 3_600_000 + 30 * 60_000 + i * 1000;
      const end = attempt(rows, `x${i}`, 1, t0, false, 'card_declined');
      attempt(rows, `x${i}`, 2, end + 30_000, i < wins, 'card_declined');
    }
    await insertRows(s.clickhouse, events.text, rows);

    const result = await run({ ...deps, publisher: recorder }, NOW, { from: FROM, to: TO });
    expect(result.status).toBe('ok');
    const second = await readPolicy(deps);
    // Every entry names the run job_runs recorded, and the run's injected time.
    expect(new Set(second.map((e) => e.runId))).toEqual(new Set([result.runId]));
    expect(new Set(second.map((e) => e.computedAt?.toISOString()))).toEqual(new Set([NOW.toISOString()]));
    const card2 = entry(second, 'card_declined');
    const k1 = card2.evidence.steps.find((x) => x.k === 1)!;
    expect(k1.retried).toBe(card.retried + extra);
    // The data moved: point estimate above the threshold, interval straddling it ...
    expect(k1.p).toBeGreaterThanOrEqual(0.1);
    expect(k1.ciLow).toBeLessThan(0.1);
    expect(k1.ciHigh).toBeGreaterThan(0.1);
    // ... which, without a previous decision, would say "retry" ...
    const fresh = decide({
      channel: 'alipay',
      failureCode: 'card_declined',
      steps: k1 ? [{ k: 1, failures: k1.retried, retried: k1.retried, succeeded: k1.succeeded }] : [],
      succeededRetries: k1.succeeded,
      medianDelaySeconds: 30,
      peak: { hours: [], rates: [], mean: 0.1 },
      previous: null,
    });
    expect(fresh.action).toBe('retry');
    // ... but the stored decision holds, and says why.
    expect(card2).toMatchObject({ action: 'no_retry', maxAttempts: 1, change: 'unchanged' });
    expect(card2.previous).toEqual({ action: 'no_retry', maxAttempts: 1, peakMaxAttempts: 1 });
    expect(card2.reason).toMatch(/inconclusive.*previous decision kept/);
    // Nothing else flipped either.
    for (const e of second) {
      const before = entry(first, e.failureCode);
      expect({ code: e.failureCode, action: e.action, max: e.maxAttempts, peak: e.peakMaxAttempts, hours: e.peakHours }).toEqual({
        code: before.failureCode,
        action: before.action,
        max: before.maxAttempts,
        peak: before.peakMaxAttempts,
        hours: before.peakHours,
      });
      expect(e.change).toBe('unchanged');
    }
    // The history keeps the first run.
    expect((await readPreviousPolicy(deps)).map((p) => [p.failureCode, p.action, p.change])).toEqual(first.map((p) => [p.failureCode, p.action, p.change]));
  });

  test('the Kafka publisher writes one message per channel:failure_code to a compacted topic', async () => {
    const publisher = createKafkaPolicyPublisher(s.kafka, { topic });
    try {
      await publisher.publish(first);
    } finally {
      await publisher.close();
    }
    const admin = s.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets.reduce((a, p) => a + Number(p.high), 0)).toBe(first.length);
      const configs = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic, configNames: ['cleanup.policy'] }] });
      expect(configs.resources[0]!.configEntries.find((c) => c.configName === 'cleanup.policy')?.configValue).toBe('compact');
    } finally {
      await admin.disconnect();
    }
  });
});
