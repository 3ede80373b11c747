import { describe, expect, test } from 'vitest';
import type { Hit } from '../rules/index.ts';
import { caseIdFor, createCaseBook, decideCases, SYSTEM_RESOLUTION, type Case } from './decide.ts';

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const MIN = 60_000;

const hit = (patch: Partial<Hit> = {}): Hit => ({
  ruleId: 'retry_storm',
  ruleVersion: 'v1',
  title: 'Retry storm',
  severity: 'medium',
  action: 'notify_support',
  entityType: 'user',
  entityId: 'u-1',
  cooldownMs: 30 * MIN,
  recommendedAction: 'Call the user.',
  evidence: { user_max_attempts_per_order_1m: 5 },
  ...patch,
});
const keyOf = (c: Case) => `${c.rule_id}|${c.entity_type}|${c.entity_id}`;
/** The cases `decideCases` returned, as the latest per (rule, entity) for the next call. */
const latestOf = (...cases: Case[]) => new Map(cases.map((c) => [keyOf(c), c]));

describe('decideCases: what rule hits do to cases', () => {
  test('a first hit opens a case with the rule, the entity, the evidence and a stable id', () => {
    const { opened, updated } = decideCases([hit()], new Map(), T0);
    expect(updated).toEqual([]);
    expect(opened).toEqual([
      {
        case_id: caseIdFor('retry_storm', 'user', 'u-1', T0),
        rule_id: 'retry_storm',
        rule_version: 'v1',
        title: 'Retry storm',
        severity: 'medium',
        action: 'notify_support',
        entity_type: 'user',
        entity_id: 'u-1',
        status: 'open',
        opened_at: '2026-11-25 10:00:00',
        updated_at: '2026-11-25 10:00:00',
        hit_count: 1,
        evidence: { user_max_attempts_per_order_1m: 5 },
        recommended_action: 'Call the user.',
        assignee: '',
        resolution: '',
      },
    ]);
    expect(opened[0]!.case_id).toMatch(/^C[0-9a-f]{15}$/);
    expect(decideCases([hit()], new Map(), T0).opened[0]!.case_id).toBe(opened[0]!.case_id);
    expect(decideCases([hit()], new Map(), T0 + 1).opened[0]!.case_id).not.toBe(opened[0]!.case_id);
  });

  test('a hit with the same evidence adds nothing; new evidence updates the case, whatever its status', () => {
    const [open] = decideCases([hit()], new Map(), T0).opened;
    expect(decideCases([hit()], latestOf(open!), T0 + MIN)).toEqual({ opened: [], updated: [] });
    for (const status of ['open', 'acknowledged'] as const) {
      const { opened, updated } = decideCases(
        [hit({ ruleVersion: 'v2', evidence: { user_max_attempts_per_order_1m: 7 }, recommendedAction: 'Block the user.' })],
        latestOf({ ...open!, status }),
        T0 + MIN,
      );
      expect(opened).toEqual([]);
      expect(updated).toEqual([
        {
          ...open!,
          status,
          rule_version: 'v2',
          hit_count: 2,
          updated_at: '2026-11-25 10:01:00',
          evidence: { user_max_attempts_per_order_1m: 7 },
          recommended_action: 'Block the user.',
        },
      ]);
    }
  });

  test("a resolved case takes further hits only within the rule's cooldown of its last update; after it a new case opens", () => {
    const [open] = decideCases([hit()], new Map(), T0).opened;
    const resolved: Case = { ...open!, status: 'resolved', updated_at: '2026-11-25 10:05:00' };
    const again = hit({ evidence: { user_max_attempts_per_order_1m: 6 } });
    const within = decideCases([again], latestOf(resolved), T0 + 34 * MIN);
    expect(within.opened).toEqual([]);
    expect(within.updated).toMatchObject([{ case_id: open!.case_id, status: 'resolved', hit_count: 2 }]);
    const after = decideCases([again], latestOf(resolved), T0 + 35 * MIN);
    expect(after.updated).toEqual([]);
    expect(after.opened).toMatchObject([
      { case_id: caseIdFor('retry_storm', 'user', 'u-1', T0 + 35 * MIN), status: 'open', hit_count: 1, opened_at: '2026-11-25 10:35:00' },
    ]);
  });

  test('a case the system resolved (its situation was over) is a closed episode: the next hit opens a new case, also within the cooldown', () => {
    const [open] = decideCases([hit()], new Map(), T0).opened;
    const cleared: Case = { ...open!, status: 'resolved', resolution: SYSTEM_RESOLUTION, updated_at: '2026-11-25 10:05:00' };
    const { opened, updated } = decideCases([hit()], latestOf(cleared), T0 + 6 * MIN);
    expect(updated).toEqual([]);
    expect(opened).toMatchObject([{ case_id: caseIdFor('retry_storm', 'user', 'u-1', T0 + 6 * MIN), status: 'open', hit_count: 1 }]);
    // Support's own resolution keeps the cooldown.
    expect(decideCases([hit()], latestOf({ ...cleared, resolution: 'customer_contacted' }), T0 + 6 * MIN)).toEqual({ opened: [], updated: [] });
  });

  test('several hits of one (rule, entity) in a call make one version of one case; other rules and entities get their own', () => {
    const { opened, updated } = decideCases(
      [
        hit(),
        hit({ evidence: { user_max_attempts_per_order_1m: 6 } }),
        hit({ entityId: 'u-2' }),
        hit({ ruleId: 'other_rule' }),
        hit({ evidence: { user_max_attempts_per_order_1m: 8 } }),
      ],
      new Map(),
      T0,
    );
    expect(updated).toEqual([]);
    expect(opened.map((c) => [keyOf(c), c.hit_count, c.evidence])).toEqual([
      ['retry_storm|user|u-1', 3, { user_max_attempts_per_order_1m: 8 }],
      ['retry_storm|user|u-2', 1, { user_max_attempts_per_order_1m: 5 }],
      ['other_rule|user|u-1', 1, { user_max_attempts_per_order_1m: 5 }],
    ]);
    // An existing case updated twice in one call is one update.
    const again = decideCases(
      [hit({ evidence: { user_max_attempts_per_order_1m: 9 } }), hit({ evidence: { user_max_attempts_per_order_1m: 10 } })],
      latestOf(opened[0]!),
      T0 + MIN,
    );
    expect(again.opened).toEqual([]);
    expect(again.updated).toMatchObject([{ case_id: opened[0]!.case_id, hit_count: 5, evidence: { user_max_attempts_per_order_1m: 10 } }]);
  });

  test('leaves the latest cases it was given as they were', () => {
    const [open] = decideCases([hit()], new Map(), T0).opened;
    const latest = latestOf(open!);
    const before = structuredClone([...latest]);
    decideCases([hit({ evidence: { user_max_attempts_per_order_1m: 9 } }), hit({ entityId: 'u-9' })], latest, T0 + MIN);
    expect([...latest]).toEqual(before);
  });

  test("an update keeps what automation recorded on the case; a new episode after the system's resolution starts without it", () => {
    const [c] = decideCases([hit()], new Map(), T0).opened;
    const handled: Case = { ...c!, assignee: 'automation', evidence: { ...c!.evidence, automation: { commands: ['cmd-1'] } } };
    const { updated } = decideCases([hit({ evidence: { user_max_attempts_per_order_1m: 7 } })], latestOf(handled), T0 + MIN);
    expect(updated[0]!.evidence).toEqual({ user_max_attempts_per_order_1m: 7, automation: { commands: ['cmd-1'] } });
    // The same evidence again, with automation's record, is no change.
    expect(decideCases([hit({ evidence: { user_max_attempts_per_order_1m: 7 } })], latestOf(updated[0]!), T0 + 2 * MIN).updated).toEqual([]);

    const cleared: Case = {
      ...updated[0]!,
      status: 'resolved',
      resolution: SYSTEM_RESOLUTION,
      evidence: { ...updated[0]!.evidence, closed_by: { event_id: 'e-1' } },
    };
    const { opened } = decideCases([hit()], latestOf(cleared), T0 + 3 * MIN);
    expect(opened[0]!.evidence).toEqual({ user_max_attempts_per_order_1m: 5 });
  });
});

describe('createCaseBook: the same decisions kept in memory', () => {
  test('each call decides against the cases of the calls before, and every case opened is listed in order', async () => {
    const book = createCaseBook();
    expect(await book.applyHits([hit()], T0)).toMatchObject({ opened: [{ entity_id: 'u-1' }], updated: [] });
    expect(await book.applyHits([hit(), hit({ entityId: 'u-2' })], T0 + MIN)).toMatchObject({ opened: [{ entity_id: 'u-2' }], updated: [] });
    expect(await book.applyHits([hit({ evidence: { user_max_attempts_per_order_1m: 6 } })], T0 + 2 * MIN)).toMatchObject({
      opened: [],
      updated: [{ entity_id: 'u-1', hit_count: 2 }],
    });
    expect(book.opened.map((c) => c.entity_id)).toEqual(['u-1', 'u-2']);
  });

  test('starts from the cases it is given (a backtest from the cases as they stood)', async () => {
    const [open] = decideCases([hit()], new Map(), T0).opened;
    const book = createCaseBook(latestOf(open!));
    expect(await book.applyHits([hit()], T0 + MIN)).toEqual({ opened: [], updated: [] });
    expect(book.opened).toEqual([]);
  });
});
