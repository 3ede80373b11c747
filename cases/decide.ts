import { createHash } from 'node:crypto';
import type { Hit } from '../rules/index.ts';
import { toDateTimeText } from '../storage/sql.ts';

export const caseStatuses = ['open', 'acknowledged', 'resolved'] as const;
export type CaseStatus = (typeof caseStatuses)[number];

/** A case as support sees it (ClickHouse `cases`, Kafka `payments.cases`, the CLI). */
export interface Case {
  case_id: string;
  rule_id: string;
  rule_version: string;
  title: string;
  severity: string;
  action: string;
  entity_type: string;
  entity_id: string;
  status: CaseStatus;
  opened_at: string;
  updated_at: string;
  hit_count: number;
  evidence: Record<string, unknown>;
  recommended_action: string;
  /** The user working the case ('' = unassigned). */
  assignee: string;
  /** How support closed it, one of `resolutions` ('' while not resolved). */
  resolution: string;
}

/** How support closes a case: what the rules page's precision is computed from. */
export const resolutions = ['confirmed_fraud', 'false_positive', 'customer_contacted', 'refunded', 'no_action_needed'] as const;
export type Resolution = (typeof resolutions)[number];

/**
 * The resolution of a case the system closed because its rule's `resolve_when` held (the stuck
 * order got its result): not one of support's `resolutions`, and not support's verdict on it.
 */
export const SYSTEM_RESOLUTION = 'cleared';
/** Who the history names for what the system does to a case by itself. */
export const SYSTEM_ACTOR = 'system';

/**
 * The evidence keys automation and the system add to a case (what was sent, what closed it).
 * Detection replaces the rest of the evidence with each hit's, and keeps these.
 */
export const MACHINE_EVIDENCE_KEYS = ['automation', 'closed_by'] as const;

/** The machine-added entries of `evidence`. */
export function machineEvidence(evidence: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const key of MACHINE_EVIDENCE_KEYS) if (key in evidence) kept[key] = evidence[key];
  return kept;
}

/** Stable id of a case: the rule, the entity and the moment it opened. */
export const caseIdFor = (ruleId: string, entityType: string, entityId: string, openedAtMs: number): string =>
  'C' + createHash('sha256').update(`${ruleId}\u0000${entityType}\u0000${entityId}\u0000${openedAtMs}`).digest('hex').slice(0, 15);

/**
 * What rule hits do to cases, given the latest case of each (rule, entity) keyed
 * `rule|entity_type|entity_id`: one case per (rule, entity) while it is open or acknowledged, or
 * resolved less than the rule's cooldown ago, and further hits update it (a hit whose evidence
 * is unchanged adds nothing); otherwise a new case opens. A case the system resolved
 * (SYSTEM_RESOLUTION) is never reopened by a hit: that is a new episode and a new case. Pure, so live detection and a backtest
 * decide alike.
 */
export function decideCases(hits: readonly Hit[], latest: ReadonlyMap<string, Case>, nowMs: number): { opened: Case[]; updated: Case[] } {
  // case_id -> the case as it ends up and whether this call opened it: one version per case.
  const changed = new Map<string, { c: Case; isNew: boolean }>();
  const now = toDateTimeText(nowMs);
  const current = new Map(latest);
  for (const hit of hits) {
    const key = `${hit.ruleId}|${hit.entityType}|${hit.entityId}`;
    const c = current.get(key);
    const evidence = hit.evidence as Record<string, unknown>;
    // A situation the system saw end is over: a later hit is a new episode, so a new case.
    const cleared = c?.status === 'resolved' && c.resolution === SYSTEM_RESOLUTION;
    const active = c && !cleared && (c.status !== 'resolved' || nowMs - Date.parse(c.updated_at.replace(' ', 'T') + 'Z') < hit.cooldownMs);
    if (c && active) {
      // An update keeps what automation recorded on the case (the commands it sent); a hit with
      // the same evidence adds nothing support needs to see.
      const updatedEvidence = { ...evidence, ...machineEvidence(c.evidence) };
      if (JSON.stringify(c.evidence) === JSON.stringify(updatedEvidence)) continue;
      const next: Case = {
        ...c,
        hit_count: c.hit_count + 1,
        updated_at: now,
        evidence: updatedEvidence,
        recommended_action: hit.recommendedAction,
        rule_version: hit.ruleVersion,
      };
      current.set(key, next);
      changed.set(next.case_id, { c: next, isNew: changed.get(next.case_id)?.isNew ?? false });
    } else {
      const n: Case = {
        case_id: caseIdFor(hit.ruleId, hit.entityType, hit.entityId, nowMs),
        rule_id: hit.ruleId,
        rule_version: hit.ruleVersion,
        title: hit.title,
        severity: hit.severity,
        action: hit.action,
        entity_type: hit.entityType,
        entity_id: hit.entityId,
        status: 'open',
        opened_at: now,
        updated_at: now,
        hit_count: 1,
        evidence,
        recommended_action: hit.recommendedAction,
        assignee: '',
        resolution: '',
      };
      current.set(key, n);
      changed.set(n.case_id, { c: n, isNew: true });
    }
  }
  const all = [...changed.values()];
  return { opened: all.filter((x) => x.isNew).map((x) => x.c), updated: all.filter((x) => !x.isNew).map((x) => x.c) };
}

/**
 * Cases kept in memory with the live semantics (decideCases), for runs that must store and
 * publish nothing: a backtest, benchmarks and tests. `opened` lists every case opened, in order.
 */
export function createCaseBook(initial: ReadonlyMap<string, Case> = new Map()) {
  const latest = new Map(initial);
  const opened: Case[] = [];
  return {
    opened,
    async applyHits(hits: readonly Hit[], nowMs: number): Promise<{ opened: Case[]; updated: Case[] }> {
      const result = decideCases(hits, latest, nowMs);
      for (const c of [...result.opened, ...result.updated]) latest.set(`${c.rule_id}|${c.entity_type}|${c.entity_id}`, c);
      opened.push(...result.opened);
      return result;
    },
  };
}
export type CaseBook = ReturnType<typeof createCaseBook>;
