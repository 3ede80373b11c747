import { describe, expect, test } from 'vitest';
import { createRuleEvaluator, loadRuleSetOrThrow } from '../rules/index.ts';
import { breakEntityId, hitsForOrder, statementFacts, type BreakEvidence } from './cases.ts';

const ruleSet = await loadRuleSetOrThrow();
const evaluator = createRuleEvaluator(ruleSet, 'statements');
const brk = (id: string, kind: BreakEvidence['kind']): BreakEvidence => ({ break_id: id, kind, order_id: 'o-1', period: 'p' });

describe('statement breaks to rule hits', () => {
  test('facts count the open breaks of each kind on the order', () => {
    const facts = statementFacts(ruleSet, [brk('a', 'duplicate_settlement'), brk('b', 'duplicate_settlement'), brk('c', 'ambiguous')]);
    expect(facts).toMatchObject({ order_duplicate_settlement: 2, order_ambiguous_settlement: 1, order_charged_not_recorded: 0 });
  });

  test('a new break fires the rule of its kind with every open break of that kind as evidence', async () => {
    const open = [brk('a', 'duplicate_settlement'), brk('b', 'duplicate_settlement')];
    const hits = await hitsForOrder(ruleSet, evaluator, 'o-1', open, new Set(['b']));
    expect(hits.map((h) => h.ruleId)).toEqual(['duplicate_settlement']);
    expect(hits[0]!.evidence).toMatchObject({ order_duplicate_settlement: 2, breaks: open });
    expect(hits[0]!.recommendedAction).toContain('Order o-1');
  });

  test('an old break never fires again: only the rules reading a kind with a new break keep their hits', async () => {
    const open = [brk('old', 'charged_not_recorded'), brk('new', 'refund_mismatch')];
    const hits = await hitsForOrder(ruleSet, evaluator, 'o-1', open, new Set(['new']));
    expect(hits.map((h) => h.ruleId)).toEqual(['refund_mismatch']);
    expect((hits[0]!.evidence as unknown as { breaks: BreakEvidence[] }).breaks.map((b) => b.break_id)).toEqual(['new']);
    expect(await hitsForOrder(ruleSet, evaluator, 'o-1', open, new Set())).toEqual([]);
  });

  test('a break without an order id is kept under its transaction', () => {
    expect(breakEntityId({ order_id: 'o-1', transaction_id: 'T1' })).toBe('o-1');
    expect(breakEntityId({ order_id: '', transaction_id: 'T1' })).toBe('transaction T1');
  });
});
