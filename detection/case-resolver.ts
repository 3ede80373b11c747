import type { Case, CaseStore } from '../cases/index.ts';
import type { Logger } from '../log/index.ts';
import { computeFacts, type TimedEvent } from '../rules/features.ts';
import { addContext, type ContextFacts } from './context.ts';
import { EVENT_ENTITIES, type EventEntity } from './entities.ts';
import type { PreparedRules } from './prepared.ts';
import { entityEvents, type ScreenDeps } from './screen.ts';

/**
 * Cases whose situation is over: the unresolved cases of rules with a `resolve_when` are looked
 * at every few seconds, their entity's facts computed exactly as for a hit, and those whose
 * `resolve_when` holds are resolved by the system with the facts and the latest event that
 * showed it. A hit never arrives for these (an order that got its result matches no rule any
 * more), so they are found by case, not by the new rows.
 */

/** How often the unresolved cases are looked at. */
const RESOLVE_EVERY_MS = 10_000;
/** Cases looked at per run, longest untouched first; the rest wait for the next run. */
const MAX_CASES_PER_RUN = 5_000;

export interface CaseResolverDeps extends ScreenDeps {
  cases: Pick<CaseStore, 'unresolvedOf' | 'resolveBySystem'>;
  logger: Logger;
}

/** The event that brought the situation to an end, as the evidence shows it. */
function eventSummary(t: TimedEvent): Record<string, unknown> {
  const e = t.event;
  return { event_id: e.event_id, type: e.type, status: e.status, source: e.source, attempt: e.attempt, occurred_at: e.occurred_at };
}

const formatFacts = (facts: Record<string, unknown>) =>
  Object.entries(facts)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(', ');

export function createCaseResolver(deps: CaseResolverDeps) {
  let lastMs = -Infinity;
  return {
    /** Whether a run is due at `nowMs`. */
    due: (nowMs: number): boolean => nowMs - lastMs >= RESOLVE_EVERY_MS,
    /** A new leadership looks at once. */
    reset(): void {
      lastMs = -Infinity;
    },
    /** Resolves the cases whose resolve_when holds at `nowMs`; returns them as stored. */
    async run(prepared: PreparedRules, context: ContextFacts, nowMs: number, untilSec: number | undefined): Promise<Case[]> {
      const rules = prepared.ruleSet.rules.filter((r) => r.enabled && r.resolveWhen && (EVENT_ENTITIES as readonly string[]).includes(r.entity));
      if (rules.length === 0) {
        lastMs = nowMs;
        return [];
      }
      const open = await deps.cases.unresolvedOf(
        rules.map((r) => r.id),
        MAX_CASES_PER_RUN,
      );
      const byEntity = new Map<EventEntity, Case[]>();
      for (const c of open) {
        const list = byEntity.get(c.entity_type as EventEntity);
        if (list) list.push(c);
        else byEntity.set(c.entity_type as EventEntity, [c]);
      }
      const closing: { c: Case; closedBy: Record<string, unknown>; note: string }[] = [];
      for (const [entity, cases] of byEntity) {
        const events = await entityEvents(deps, entity, [...new Set(cases.map((c) => c.entity_id))], nowMs, prepared.windowOf.get(entity) ?? 0, untilSec);
        for (const c of cases) {
          const list = events.get(c.entity_id);
          // Without events in the window there is nothing to show the situation is over.
          if (!list || list.length === 0) continue;
          const facts: Record<string, number> = computeFacts(prepared.ruleSet.catalog, { entity, entityId: c.entity_id }, list, nowMs, prepared.read);
          addContext(facts, context, prepared.features, list, nowMs);
          const held = (await prepared.evaluator.resolved(entity, facts, new Set([c.rule_id]))).get(c.rule_id);
          if (!held) continue;
          const latest = eventSummary(list.reduce((a, b) => (b.occurredAtMs > a.occurredAtMs ? b : a)));
          closing.push({
            c,
            closedBy: { facts: held, event: latest },
            note:
              `The situation is over (resolve_when held: ${formatFacts(held)}); latest event ${String(latest.event_id)}: ${String(latest.status)} from ` +
              `${String(latest.source)} at ${String(latest.occurred_at)}.`,
          });
        }
      }
      const resolved = closing.length ? await deps.cases.resolveBySystem(closing, nowMs) : [];
      for (const c of resolved)
        deps.logger.info('case resolved by the system', { case_id: c.case_id, rule: c.rule_id, entity: `${c.entity_type} ${c.entity_id}` });
      lastMs = nowMs;
      return resolved;
    },
  };
}
export type CaseResolver = ReturnType<typeof createCaseResolver>;
