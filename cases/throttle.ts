import { machineEvidence, type Case } from './decide.ts';

/** When a stored case was last published: its `updated_at` (every published change sets it). */
export const publishedAtMs = (c: Pick<Case, 'updated_at'>): number => Date.parse(c.updated_at.replace(' ', 'T') + 'Z');

/**
 * The case as stored, with the fields hits change taken from `held`: hits never change the
 * status, severity, assignee or resolution, so whatever support did meanwhile is kept.
 */
export function withHits(stored: Case, held: Case): Case {
  return {
    ...stored,
    hit_count: Math.max(stored.hit_count, held.hit_count),
    // Automation's and the system's record on the stored case outlives the held copy, decided before it.
    evidence: { ...held.evidence, ...machineEvidence(stored.evidence) },
    recommended_action: held.recommended_action,
    rule_version: held.rule_version,
    updated_at: held.updated_at > stored.updated_at ? held.updated_at : stored.updated_at,
  };
}

/**
 * Updates from further hits waiting for their case's next publication: at most one per case,
 * the latest (a newer update replaces the held one). A case published at T publishes its next
 * hit update at T + interval at the earliest. Owns no timer and does no I/O; the case store
 * decides when to ask for what is due.
 */
export function createUpdateHold(intervalMs: number) {
  const held = new Map<string, { c: Case; dueMs: number }>();
  return {
    /**
     * Whether the hit update `c` of a case last published at `publishedMs` must wait; if so it
     * is kept (replacing an older held update of the case).
     */
    hold(c: Case, publishedMs: number, nowMs: number): boolean {
      const dueMs = publishedMs + intervalMs;
      if (nowMs >= dueMs) {
        held.delete(c.case_id);
        return false;
      }
      held.set(c.case_id, { c, dueMs });
      return true;
    },
    get(caseId: string): Case | undefined {
      return held.get(caseId)?.c;
    },
    /** Removes and returns the held updates due at `nowMs` (all of them with `Infinity`). */
    takeDue(nowMs: number): Case[] {
      const due = [...held.values()].filter((h) => h.dueMs <= nowMs).map((h) => h.c);
      for (const c of due) held.delete(c.case_id);
      return due;
    },
    /** Puts back updates whose publication failed, unless a newer one of the case is held now. */
    restore(cases: readonly Case[], nowMs: number): void {
      for (const c of cases) if (!held.has(c.case_id)) held.set(c.case_id, { c, dueMs: nowMs });
    },
    /** When the earliest held update is due (ms), or null when nothing is held. */
    nextDueMs(): number | null {
      let next: number | null = null;
      for (const h of held.values()) if (next === null || h.dueMs < next) next = h.dueMs;
      return next;
    },
    get size(): number {
      return held.size;
    },
  };
}
export type UpdateHold = ReturnType<typeof createUpdateHold>;
