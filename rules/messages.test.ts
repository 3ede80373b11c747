import { mkdtempSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseFeatureCatalog } from './catalog.ts';
import { defaultFeaturesPath, defaultRulesPath, loadRuleSet, loadRuleSetOrThrow, parseRuleSet, type RuleSource } from './load.ts';
import { parseMessageTemplate, renderMessage, type MessageValues } from './messages.ts';

const catalogResult = parseFeatureCatalog('rules/features.json', readFileSync(defaultFeaturesPath, 'utf8'));
if (!catalogResult.ok) throw new Error('bundled features.json is invalid');
const catalog = catalogResult.catalog;
const rule = (id: string): RuleSource => ({ file: `rules/definitions/${id}.json`, text: readFileSync(join(defaultRulesPath, `${id}.json`), 'utf8') });
const values: MessageValues = {
  order_id: 'O-1',
  amount: '12.50',
  currency: 'CNY',
  time: '2026-03-01 10:03 UTC',
  channel: 'alipay',
  transaction_id: 'T-9',
};

describe('customer message templates', () => {
  test('render every placeholder, and {{ }} as literal braces', () => {
    const parsed = parseMessageTemplate('m.txt', 'Order {order_id}: {amount} {currency} at {time} by {channel} ({transaction_id}) {{ok}}');
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    expect(renderMessage(parsed.parts, values)).toBe('Order O-1: 12.50 CNY at 2026-03-01 10:03 UTC by alipay (T-9) {ok}');
  });

  test.each([
    {
      name: 'an unknown placeholder, with line and column',
      text: 'Hello,\nyour {amout} was taken',
      at: 'line 2, column 6',
      says: 'unknown placeholder {amout}',
    },
    { name: 'an unclosed brace', text: 'paid {order_id and more', at: 'line 1, column 6', says: 'not closed' },
    { name: 'a stray closing brace', text: 'x\n\n  } y', at: 'line 3, column 3', says: 'without its "{"' },
    { name: 'a placeholder spanning lines', text: 'a {order\n_id}', at: 'line 1, column 3', says: 'not closed' },
  ])('name $name', ({ text, at, says }) => {
    const parsed = parseMessageTemplate('x.message.txt', text);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems[0]).toMatchObject({ file: 'x.message.txt', path: at });
    expect(parsed.problems[0]!.message).toContain(says);
  });

  test('a template too long to be a message is refused', () => {
    expect(parseMessageTemplate('m', 'x'.repeat(4_001)).ok).toBe(false);
  });

  test('attach to their order rule; a message for an unknown or non-order rule is a problem', () => {
    const ok = parseRuleSet([rule('charged_but_failed')], catalog, [{ file: 'd/charged_but_failed.message.txt', text: 'Order {order_id}' }]);
    expect(ok.ok && ok.ruleSet.rules[0]!.customerMessage?.parts).toEqual([{ text: 'Order ' }, { placeholder: 'order_id' }]);
    const bad = parseRuleSet([rule('charged_but_failed'), rule('ip_amount_probing')], catalog, [
      { file: 'd/chargedbutfailed.message.txt', text: 'x' },
      { file: 'd/ip_amount_probing.message.txt', text: 'x' },
    ]);
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.problems.map((p) => p.file)).toEqual(['d/chargedbutfailed.message.txt', 'd/ip_amount_probing.message.txt']);
    expect(bad.problems[0]!.message).toContain('no rule "chargedbutfailed"');
    expect(bad.problems[1]!.message).toContain('order rules');
  });

  test('the shipped order rules have one, and it does not change the rule version', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const withMessage = ruleSet.rules.filter((r) => r.customerMessage).map((r) => r.id);
    expect(withMessage).toEqual(expect.arrayContaining(['charged_but_failed', 'duplicate_charge', 'risk_review', 'stuck_processing']));
    // Every order rule tells the customer something; the rules about IPs, devices and users have nothing to send.
    expect(withMessage).toEqual(ruleSet.rules.filter((r) => r.entity === 'order').map((r) => r.id));
    const bare = parseRuleSet([rule('charged_but_failed')], catalog);
    expect(bare.ok && bare.ruleSet.rules[0]!.version).toBe(ruleSet.rules.find((r) => r.id === 'charged_but_failed')!.version);
  });

  test('loadRuleSet reads them from the folder and reports a bad one with its file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    cpSync(defaultRulesPath, dir, { recursive: true });
    writeFileSync(join(dir, 'stuck_processing.message.txt'), 'Order {order_id} at {when}');
    const result = await loadRuleSet({ rulesPath: dir });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      expect.objectContaining({ file: join(dir, 'stuck_processing.message.txt'), path: 'line 1, column 21', message: expect.stringContaining('{when}') }),
    ]);
  });
});
