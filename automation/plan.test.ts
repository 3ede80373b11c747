import { describe, expect, test } from 'vitest';
import type { Case } from '../cases/index.ts';
import { commandMessage } from './automation.ts';
import { commandProblem } from '../contract/command.ts';
import { commandIdFor, planCommands, refundVerdict, type AttemptRow, type RefundSafety } from './plan.ts';
import { applyResults } from './results.ts';
import { requeryLimit } from './requery.ts';

const kase = (patch: Partial<Case> = {}): Case => ({
  case_id: 'C1',
  rule_id: 'duplicate_charge',
  rule_version: 'v',
  title: 'Order charged more than once',
  severity: 'critical',
  action: 'automatic',
  entity_type: 'order',
  entity_id: 'o-1',
  status: 'open',
  opened_at: '2026-11-25 10:00:00',
  updated_at: '2026-11-25 10:00:00',
  hit_count: 1,
  evidence: {},
  recommended_action: '',
  assignee: '',
  resolution: '',
  ...patch,
});
const attempt = (n: number, patch: Partial<AttemptRow> = {}): AttemptRow => ({
  order_id: 'o-1',
  attempt: n,
  latest_status: 'succeeded',
  transaction_id: `T${n}`,
  amount_minor: 12_900,
  currency: 'CNY',
  first_succeeded: 1_000 + n,
  ...patch,
});
const safety = (patch: Partial<RefundSafety> = {}): RefundSafety => ({
  enabled: true,
  max: { all: 50_000, byCurrency: {} },
  daily: { all: 100_000, byCurrency: {} },
  spentToday: new Map(),
  ...patch,
});
const refundRule = { id: 'duplicate_charge', command: { type: 'refund' as const } };

describe('commandIdFor: the idempotency key', () => {
  test('the same command for the same case and attempt has the same id; another attempt, case or round another', () => {
    const a = commandIdFor('requery_status', { caseId: 'C1', orderId: 'o-1', attempt: 1 });
    expect(a).toMatch(/^K[0-9a-f]{24}$/);
    expect(commandIdFor('requery_status', { caseId: 'C1', orderId: 'o-1', attempt: 1 })).toBe(a);
    expect(commandIdFor('requery_status', { caseId: 'C1', orderId: 'o-1', attempt: 2 })).not.toBe(a);
    expect(commandIdFor('requery_status', { caseId: 'C2', orderId: 'o-1', attempt: 1 })).not.toBe(a);
    expect(commandIdFor('requery_status', { caseId: 'C1', orderId: 'o-1', attempt: 1, round: 1 })).not.toBe(a);
  });

  test('a refund is keyed by the attempt alone: two cases about one order can never refund one attempt twice', () => {
    expect(commandIdFor('refund', { caseId: 'C1', orderId: 'o-1', attempt: 2 })).toBe(
      commandIdFor('refund', { caseId: 'C9', orderId: 'o-1', attempt: 2, round: 3 }),
    );
  });
});

describe('planCommands', () => {
  test('a duplicate charge refunds every succeeded attempt but the first charged, with its amount', () => {
    const plan = planCommands(
      kase(),
      refundRule,
      [attempt(3, { first_succeeded: 1_001 }), attempt(1, { first_succeeded: 1_000 }), attempt(2, { first_succeeded: 0, latest_status: 'failed' })],
      safety(),
    );
    expect(plan).toMatchObject({
      kind: 'commands',
      commands: [{ type: 'refund', order_id: 'o-1', attempt: 3, transaction_id: 'T3', amount_minor: 12_900, currency: 'CNY' }],
    });
  });

  test.each([
    ['refunds off', safety({ enabled: false }), /AUTOMATION_REFUNDS=off/],
    ['over the ceiling', safety({ max: { all: 10_000, byCurrency: {} } }), /over the automatic ceiling of 10000/],
    ['a currency without a ceiling', safety({ max: { all: 0, byCurrency: { USD: 99_999 } } }), /ceiling of 0/],
    ['over the daily budget', safety({ spentToday: new Map([['CNY', 90_000]]) }), /would take today's automatic refunds to 102900, over the budget of 100000/],
  ])('%s: support gets the case, and no command', (_name, s, reason) => {
    const plan = planCommands(kase(), refundRule, [attempt(1), attempt(2)], s);
    expect(plan.kind).toBe('support');
    if (plan.kind === 'support') expect(plan.reason).toMatch(reason);
  });

  test('the budget counts what one pass plans: the second refund of the day that does not fit goes to support', () => {
    const s = safety({ daily: { all: 20_000, byCurrency: {} } });
    expect(planCommands(kase(), refundRule, [attempt(1), attempt(2)], s).kind).toBe('commands');
    expect(s.spentToday.get('CNY')).toBe(12_900);
    expect(
      planCommands(kase({ case_id: 'C2', entity_id: 'o-2' }), refundRule, [attempt(1, { order_id: 'o-2' }), attempt(2, { order_id: 'o-2' })], s).kind,
    ).toBe('support');
    expect(refundVerdict(7_100, 'CNY', s)).toBeNull();
  });

  test('a refund already sent is sent again under its id whatever the limits say now, and not counted twice', () => {
    const id = commandIdFor('refund', { caseId: 'C1', orderId: 'o-1', attempt: 2 });
    // Its 12,900 is in today's spending already; the budget has no room for it a second time.
    const s = safety({ daily: { all: 12_900, byCurrency: {} }, spentToday: new Map([['CNY', 12_900]]), sent: new Set([id]) });
    expect(planCommands(kase(), refundRule, [attempt(1), attempt(2)], s)).toMatchObject({ kind: 'commands', commands: [{ command_id: id, attempt: 2 }] });
    expect(s.spentToday.get('CNY')).toBe(12_900);
    expect(planCommands(kase(), refundRule, [attempt(1), attempt(2)], { ...s, sent: new Set() }).kind).toBe('support');
  });

  test('a stuck order is re-queried for each attempt still processing; none processing goes to support', () => {
    const rule = { id: 'stuck_processing', command: { type: 'requery_status' as const } };
    const plan = planCommands(
      kase({ rule_id: 'stuck_processing' }),
      rule,
      [attempt(1, { latest_status: 'processing', first_succeeded: 0 }), attempt(2, { latest_status: 'failed' })],
      safety(),
    );
    expect(plan).toMatchObject({ kind: 'commands', commands: [{ type: 'requery_status', attempt: 1 }] });
    expect(planCommands(kase(), rule, [attempt(1)], safety()).kind).toBe('support');
  });

  test('a card-testing IP is blocked for the ttl; the message matches the command contract', () => {
    const c = kase({ rule_id: 'ip_amount_probing', entity_type: 'ip', entity_id: '203.0.113.9', title: 'Card testing' });
    const plan = planCommands(c, { id: 'ip_amount_probing', command: { type: 'block', ttlMs: 3_600_000 } }, [], safety());
    expect(plan).toMatchObject({ kind: 'commands', commands: [{ type: 'block', entity_type: 'ip', entity_id: '203.0.113.9', ttl: 3600 }] });
    if (plan.kind !== 'commands') throw new Error('expected commands');
    const message = commandMessage(plan.commands[0]!, Date.UTC(2026, 10, 25, 10), Date.UTC(2026, 10, 25, 10, 5));
    expect(commandProblem(message)).toBeNull();
    expect(message).toMatchObject({ issued_at: '2026-11-25T10:00:00Z', expires_at: '2026-11-25T10:05:00Z' });
  });
});

describe('applyResults', () => {
  const stored = { command_id: 'K' + '1'.repeat(24), status: 'issued' } as never;
  test('a result of a known command is a new version; a repeat changes nothing; an unknown id is dead-lettered', () => {
    const known = new Map([['K' + '1'.repeat(24), stored]]);
    const { versions, unknown } = applyResults(
      [
        { result: { command_id: 'K' + '1'.repeat(24), status: 'rejected', detail: 'IP is a corporate proxy' }, offset: '5' },
        { result: { command_id: 'K' + '2'.repeat(24), status: 'done' }, offset: '6' },
      ],
      known,
      Date.UTC(2026, 10, 25, 10),
    );
    expect(versions).toMatchObject([{ status: 'rejected', detail: 'IP is a corporate proxy', escalated: 0 }]);
    expect(unknown).toEqual([{ offset: '6', reason: `unknown command_id K${'2'.repeat(24)}` }]);
    expect(applyResults([{ result: { command_id: 'K' + '1'.repeat(24), status: 'issued' as never }, offset: '7' }], known, 0).versions).toEqual([]);
  });
});

describe('requeryLimit', () => {
  test('half as many re-queries in a peak hour the retry-policy job found, never none', () => {
    expect(requeryLimit(60, 20, new Set([19, 20]))).toBe(30);
    expect(requeryLimit(60, 3, new Set([19, 20]))).toBe(60);
    expect(requeryLimit(1, 20, new Set([20]))).toBe(1);
  });
});
