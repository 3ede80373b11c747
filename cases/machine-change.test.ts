import { describe, expect, test } from 'vitest';
import type { Case } from './decide.ts';
import { machineChange } from './store.ts';

/** The case as automation read it at the start of its pass. */
const read: Case = {
  case_id: 'C1',
  rule_id: 'duplicate_charge',
  rule_version: 'v1',
  title: 'Duplicate charge',
  severity: 'high',
  action: 'automatic',
  entity_type: 'order',
  entity_id: 'o-1',
  status: 'open',
  opened_at: '2026-11-25 10:00:00',
  updated_at: '2026-11-25 10:00:00',
  hit_count: 1,
  evidence: { order_succeeded_attempts_1h: 2 },
  recommended_action: 'Refund the extra charge.',
  assignee: '',
  resolution: '',
};
/** Automation's change on top of what it read: it takes the case and records what it sent. */
const taken: Case = { ...read, assignee: 'automation', evidence: { ...read.evidence, automation: { commands: ['cmd-1'] } } };

describe('machineChange: automation and the system change a case as stored now, not as they read it', () => {
  test('a case support resolved meanwhile stays resolved with support resolution', () => {
    expect(machineChange({ ...read, status: 'resolved', resolution: 'confirmed_fraud', assignee: 'ana' }, taken)).toBeNull();
    expect(machineChange({ ...read, status: 'resolved', resolution: 'confirmed_fraud' }, { ...read, status: 'resolved', resolution: 'cleared' })).toBeNull();
  });

  test('a case a person took or acknowledged keeps that person and status; the evidence automation adds is kept too', () => {
    const merged = machineChange({ ...read, status: 'acknowledged', assignee: 'ana' }, taken);
    expect(merged).toMatchObject({ status: 'acknowledged', assignee: 'ana', evidence: { automation: { commands: ['cmd-1'] } } });
  });

  test("detection's newer evidence, severity and hit count survive automation's older copy", () => {
    const stored: Case = { ...read, severity: 'critical', hit_count: 3, evidence: { order_succeeded_attempts_1h: 3 } };
    expect(machineChange(stored, taken)).toEqual({
      ...stored,
      assignee: 'automation',
      evidence: { order_succeeded_attempts_1h: 3, automation: { commands: ['cmd-1'] } },
    });
  });

  test('a resolution by the system or automation applies to an open case, with what closed it', () => {
    const closing: Case = { ...read, status: 'resolved', resolution: 'cleared', evidence: { ...read.evidence, closed_by: { event_id: 'e-9' } } };
    expect(machineChange({ ...read, assignee: 'automation', hit_count: 2 }, closing)).toMatchObject({
      status: 'resolved',
      resolution: 'cleared',
      assignee: 'automation',
      hit_count: 2,
      evidence: { order_succeeded_attempts_1h: 2, closed_by: { event_id: 'e-9' } },
    });
  });
});
