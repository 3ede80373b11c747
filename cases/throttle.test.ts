import { describe, expect, test } from 'vitest';
import type { Case } from './decide.ts';
import { createUpdateHold, publishedAtMs, withHits } from './throttle.ts';

const base: Case = {
  case_id: 'C1',
  rule_id: 'ip_amount_probing',
  rule_version: 'v1',
  title: 't',
  severity: 'high',
  action: 'notify_support',
  entity_type: 'ip',
  entity_id: '1.2.3.4',
  status: 'open',
  opened_at: '2026-03-01 10:00:00',
  updated_at: '2026-03-01 10:00:00',
  hit_count: 1,
  evidence: { n: 1 },
  recommended_action: 'a',
  assignee: '',
  resolution: '',
};
const at = (s: string) => Date.parse(`2026-03-01T${s}Z`);

describe('held case updates', () => {
  test('an update within the interval after the last publication is held, the latest replacing the older; it is due at publication + interval', () => {
    const hold = createUpdateHold(300_000);
    const published = publishedAtMs(base);
    expect(hold.hold({ ...base, hit_count: 2 }, published, at('10:00:01'))).toBe(true);
    expect(hold.hold({ ...base, hit_count: 3 }, published, at('10:00:02'))).toBe(true);
    expect(hold.size).toBe(1);
    expect(hold.get('C1')?.hit_count).toBe(3);
    expect(hold.nextDueMs()).toBe(at('10:05:00'));
    expect(hold.takeDue(at('10:04:59'))).toEqual([]);
    expect(hold.takeDue(at('10:05:00')).map((c) => c.hit_count)).toEqual([3]);
    expect(hold.size).toBe(0);
    expect(hold.nextDueMs()).toBeNull();
  });

  test('an update after the interval goes out at once and drops a held one; interval 0 holds nothing', () => {
    const hold = createUpdateHold(300_000);
    hold.hold({ ...base, hit_count: 2 }, publishedAtMs(base), at('10:01:00'));
    expect(hold.hold({ ...base, hit_count: 3 }, publishedAtMs(base), at('10:05:00'))).toBe(false);
    expect(hold.size).toBe(0);
    expect(createUpdateHold(0).hold(base, publishedAtMs(base), publishedAtMs(base))).toBe(false);
  });

  test('a failed publication is put back, unless a newer update of the case is held by then', () => {
    const hold = createUpdateHold(1_000);
    hold.hold({ ...base, hit_count: 2 }, at('10:00:00'), at('10:00:00'));
    const due = hold.takeDue(Infinity);
    hold.hold({ ...base, hit_count: 4 }, at('10:00:00'), at('10:00:00.5'));
    hold.restore(due, at('10:00:01'));
    expect(hold.get('C1')?.hit_count).toBe(4);
    hold.takeDue(Infinity);
    hold.restore(due, at('10:00:01'));
    expect(hold.get('C1')?.hit_count).toBe(2);
  });

  test("merging keeps support's status, assignee and resolution, and takes the hits' count and evidence", () => {
    const stored: Case = { ...base, status: 'resolved', assignee: 'sam', resolution: 'confirmed_fraud', updated_at: '2026-03-01 10:02:00' };
    const held: Case = { ...base, hit_count: 9, evidence: { n: 9 }, recommended_action: 'b', updated_at: '2026-03-01 10:01:00' };
    expect(withHits(stored, held)).toEqual({ ...stored, hit_count: 9, evidence: { n: 9 }, recommended_action: 'b' });
  });

  test('merging keeps what automation and the system recorded on the stored case after the update was held', () => {
    const stored: Case = { ...base, evidence: { n: 1, automation: { commands: ['cmd-1'] }, closed_by: { event_id: 'e-1' } } };
    const held: Case = { ...base, hit_count: 2, evidence: { n: 2 }, updated_at: '2026-03-01 10:01:00' };
    expect(withHits(stored, held).evidence).toEqual({ n: 2, automation: { commands: ['cmd-1'] }, closed_by: { event_id: 'e-1' } });
  });
});
