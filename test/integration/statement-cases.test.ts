import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaseStore, type CaseStore } from '../../cases/index.ts';
import { validateEvent } from '../../contract/validate.ts';
import type { PaymentEvent } from '../../contract/index.ts';
import { toEventRow } from '../../ingest/records.ts';
import { ensureTopics } from '../../kafka/index.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow, type RuleSet } from '../../rules/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { createBreakCases } from '../../statements/cases.ts';
import { importStatement } from '../../statements/import.ts';
import { reconcilePeriod } from '../../statements/reconcile.ts';
import { simulatedStatement, type SimulatedStatement } from '../../statements/simulated.ts';
import { writeStatement } from '../../statements/write.ts';
import { insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { services } from './helpers.ts';

const s = services();
const database = s.config.clickhouseDatabase;
const deps = () => ({ clickhouse: s.clickhouse, database, logger: silentLogger });
const dir = mkdtempSync(join(tmpdir(), 'statement-cases-'));
const GRACE = 30 * 60_000;
const period = { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) };
const afterGrace = () => new Date(period.toMs + GRACE + 60_000);
const file = join(dir, 'stripe.csv');

// The rule each break kind becomes a case of (rules/definitions).
const ruleOf: Record<string, string> = {
  charged_not_recorded: 'charged_not_recorded',
  recorded_not_settled: 'recorded_not_settled',
  amount_mismatch: 'amount_mismatch',
  currency_mismatch: 'currency_mismatch',
  duplicate_settlement: 'duplicate_settlement',
  refund_mismatch: 'refund_mismatch',
  ambiguous: 'ambiguous_settlement',
};

const events: PaymentEvent[] = [
  ...createTrafficGenerator({
    seed: 7,
    rate: 200,
    durationMs: 60_000,
    startMs: period.fromMs + 2 * 3_600_000,
    scenarios: ['duplicate-charge', 'charged-but-failed'],
  }),
].flatMap((i) => (i.event ? [i.event] : []));

let statement: SimulatedStatement;
let producer: Producer;
let store: CaseStore;
let ruleSet: RuleSet;

const storeEvents = async (list: readonly PaymentEvent[]) => {
  const rows = list.map((e, i) => {
    const valid = validateEvent(e);
    if (!valid.ok) throw new Error(valid.reason);
    return toEventRow(valid.value, 0, i, toDateTimeText(period.toMs));
  });
  await insertRows(s.clickhouse, ident(database, 'payment_events').text, rows);
};

beforeAll(async () => {
  await migrate(s.clickhouse, database, silentLogger);
  const admin = s.kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [{ topic: s.config.casesTopic, numPartitions: 1, replicationFactor: 1 }]);
  await admin.disconnect();
  producer = s.kafka.producer();
  await producer.connect();
  store = createCaseStore({ clickhouse: s.clickhouse, database, producer, topic: s.config.casesTopic });
  ruleSet = await loadRuleSetOrThrow();
  await storeEvents(events);
  statement = simulatedStatement(events, 'card', period, { currencies: true, inject: true });
  writeFileSync(file, writeStatement('stripe', statement.lines, period));
  expect(await importStatement(deps(), { path: file, format: 'stripe', maxBytes: 1 << 30 })).toMatchObject({ status: 'imported' });
  expect(await reconcilePeriod(deps(), { channel: 'card', period }, { graceMs: GRACE, now: afterGrace() })).toMatchObject({ status: 'reconciled' });
});
afterAll(async () => {
  await producer?.disconnect();
  await s.cleanup();
});

const caseDeps = () => ({ clickhouse: s.clickhouse, database, cases: store, logger: silentLogger });

describe('statement breaks become cases through the rules', () => {
  test('every injected break kind opens exactly one case of its rule, with the break as evidence, and nothing else', async () => {
    expect(statement.injected.map((i) => i.kind).sort()).toEqual(Object.keys(ruleOf).sort());
    const pass = await createBreakCases(caseDeps()).pass(ruleSet, afterGrace().getTime() + 1000);
    expect(pass).toMatchObject({ periods: 1, newBreaks: 7, cleared: 0 });
    const expected = statement.injected.map((i) => `${ruleOf[i.kind]} order ${i.order_id}`).sort();
    expect(pass.opened.map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`).sort()).toEqual(expected);
    const all = await store.list({ limit: 1000 });
    expect(all.map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`).sort()).toEqual(expected);

    const charged = all.find((c) => c.rule_id === 'charged_not_recorded')!;
    expect(charged).toMatchObject({ severity: 'critical', status: 'open', hit_count: 1 });
    expect(charged.recommended_action).toContain('The money WAS taken');
    const [evidence] = charged.evidence.breaks as Record<string, unknown>[];
    const line = statement.lines.find((l) => l.orderId === charged.entity_id && l.type === 'payment')!;
    expect(charged.evidence.order_charged_not_recorded).toBe(1);
    expect(evidence).toMatchObject({
      kind: 'charged_not_recorded',
      channel: 'card',
      order_id: charged.entity_id,
      transaction_id: line.transactionId,
      statement: { file: 'stripe.csv', type: 'payment', amount_minor: line.amountMinor, currency: line.currency, line: expect.any(Number) },
      ours: { status: expect.stringMatching(/failed|timeout|processing/), attempt: expect.any(Number) },
    });
    expect((evidence!.statement as { line: number }).line).toBeGreaterThan(1);
  });

  test('re-importing the file, re-running the period and a restarted pass open nothing and change nothing', async () => {
    expect(await importStatement(deps(), { path: file, format: 'stripe', maxBytes: 1 << 30 })).toMatchObject({ status: 'already_imported' });
    expect(await reconcilePeriod(deps(), { channel: 'card', period }, { graceMs: GRACE, now: afterGrace() })).toMatchObject({ status: 'reconciled' });
    const before = await store.list({ limit: 1000 });
    const again = await createBreakCases(caseDeps()).pass(ruleSet, afterGrace().getTime() + 2000);
    expect(again).toMatchObject({ periods: 1, newBreaks: 0, cleared: 0, opened: [], updated: [], resolved: [] });
    expect(await store.list({ limit: 1000 })).toEqual(before);
  });

  test('a late event that makes the charge match resolves its case, with the reason in its history; the other cases stay open', async () => {
    const injected = statement.injected.find((i) => i.kind === 'charged_not_recorded')!;
    const line = statement.lines.find((l) => l.orderId === injected.order_id && l.type === 'payment')!;
    const last = events.filter((e) => e.order_id === injected.order_id).at(-1)!;
    const late: PaymentEvent = {
      ...last,
      event_id: `late-${last.event_id}`,
      status: 'succeeded',
      failure_code: undefined,
      transaction_id: line.transactionId,
      amount_minor: line.amountMinor,
      currency: line.currency,
      source: 'status_query',
      occurred_at: new Date(period.fromMs + 20 * 3_600_000).toISOString(),
    };
    await storeEvents([late]);
    expect(await reconcilePeriod(deps(), { channel: 'card', period }, { graceMs: GRACE, now: afterGrace() })).toMatchObject({ status: 'reconciled' });
    const breakCases = createBreakCases(caseDeps());
    const pass = await breakCases.pass(ruleSet, afterGrace().getTime() + 3000);
    expect(pass).toMatchObject({ newBreaks: 0, cleared: 1, opened: [] });
    const charged = (await store.list({ limit: 1000 })).find((c) => c.rule_id === 'charged_not_recorded')!;
    expect(pass.resolved).toEqual([charged.case_id]);
    expect(charged).toMatchObject({ status: 'resolved', resolution: 'no_action_needed' });
    const history = await store.history(charged.case_id);
    expect(history.at(-1)).toMatchObject({ changed_by: 'statements', note: expect.stringContaining('cleared') });
    expect((await store.list({ limit: 1000 })).filter((c) => c.status === 'open')).toHaveLength(6);
    // Nothing more to do on the next pass.
    expect(await breakCases.pass(ruleSet, afterGrace().getTime() + 4000)).toMatchObject({ periods: 0 });
  });
});
