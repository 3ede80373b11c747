import { expect, test } from 'vitest';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { ruleWindows, sharedEntitiesQuery } from './related.ts';

test("a rule's window is the longest window of the features it reads, through derived facts", async () => {
  const windows = ruleWindows(await loadRuleSetOrThrow());
  expect(windows.get('ip_amount_probing')).toBe(600_000);
  expect(windows.get('retry_storm')).toBe(60_000);
  expect(windows.get('device_failure_spike')).toBe(900_000);
  expect(windows.get('charged_but_failed')).toBe(86_400_000);
});

test('the entities seen with a case entity are read within the window, by the column the entity type is kept in', () => {
  const q = sharedEntitiesQuery('db', 'device', "d'1", Date.UTC(2026, 0, 1, 10), Date.UTC(2026, 0, 1, 11))!;
  expect(q).toContain("entity_type = 'device' AND entity_key = 'd\\'1'");
  expect(q).toMatch(/occurred_at >= .*2026-01-01 10:00:00.* AND occurred_at <= .*2026-01-01 11:00:00/);
  expect(sharedEntitiesQuery('db', 'merchant', 'm1', 0, 1)).toContain(
    "FROM db.payment_events WHERE occurred_at >= toDateTime('1970-01-01 00:00:00', 'UTC') AND merchant_id = 'm1'",
  );
  expect(sharedEntitiesQuery('db', 'merchant_group', 'x', 0, 1)).toBeNull();
});
