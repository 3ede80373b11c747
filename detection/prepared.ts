import { factsRead } from '../rules/catalog.ts';
import { createRuleEvaluator } from '../rules/evaluate.ts';
import { windowMs } from '../rules/features.ts';
import type { LoadedRule, RuleSet } from '../rules/load.ts';
import type { EntityType, Feature } from '../rules/schema.ts';
import { CONTEXT_ENTITIES, EVENT_ENTITIES, type EventEntity } from './entities.ts';
import { volumeFloor } from './hot-sets.ts';
import { parkable, PARK_HORIZON_MS } from './parked-keys.ts';
import { ageThresholds } from './order-rechecks.ts';
import { screenPlan } from './screen.ts';

/** What a tick needs from a rule set, computed once per set. */
export function prepare(ruleSet: RuleSet) {
  // Rules on statement breaks are evaluated by statements/cases.ts when breaks are found, never here.
  const enabled = ruleSet.rules.filter((r) => r.enabled && r.source === 'events');
  // Only the features the enabled rules read (directly or through a derived fact) are screened,
  // fetched and computed: the catalog also holds features for dashboards and future rules, and
  // one of them alone (a merchant's hour of amounts) would make every context refresh read the
  // whole last hour of traffic. Evidence shows a rule's own facts, so nothing visible changes.
  const read = factsRead(
    ruleSet.catalog,
    enabled.flatMap((r) => r.facts),
  );
  const features: Feature[] = [];
  for (const info of ruleSet.catalog.facts.values()) if (info.kind === 'feature' && read.has(info.id)) features.push(info.def as Feature);
  const byEntity = new Map<EntityType, LoadedRule[]>();
  for (const r of enabled) {
    const list = byEntity.get(r.entity);
    if (list) list.push(r);
    else byEntity.set(r.entity, [r]);
  }
  const rulesOf = (entity: EntityType): readonly LoadedRule[] => byEntity.get(entity) ?? [];
  const screens = new Map(EVENT_ENTITIES.map((e) => [e, screenPlan(features.filter((f) => f.entity === e))]));
  const floors = new Map(
    EVENT_ENTITIES.flatMap((e) => {
      const floor = volumeFloor(
        rulesOf(e),
        features.filter((f) => f.entity === e),
      );
      return floor ? [[e, floor] as const] : [];
    }),
  );
  return {
    /** Ids of `features`. */
    read,
    ruleSet,
    evaluator: createRuleEvaluator(ruleSet, 'events'),
    entitiesWithRules: new Set(enabled.map((r) => r.entity)),
    rulesOf,
    features,
    /** The longest window of all features read, and per entity type of its own. */
    longestWindowMs: Math.max(0, ...features.map((f) => windowMs[f.window])),
    windowOf: new Map(EVENT_ENTITIES.map((e) => [e, Math.max(0, ...features.filter((f) => f.entity === e).map((f) => windowMs[f.window]))])) as ReadonlyMap<
      EventEntity,
      number
    >,
    screens,
    /** Entity types whose rules all need a volume of events (hot-sets.ts volumeFloor), with that floor. */
    floors,
    /**
     * Floored types whose keys can be parked (parked-keys.ts Parked), with the horizon:
     * PARK_HORIZON_MS, or half the shortest window of their screened features if less.
     */
    parking: new Map(
      EVENT_ENTITIES.flatMap((e) => {
        const columns = screens.get(e)!;
        const windows = columns.map((c) => windowMs[c.feature.window]);
        return floors.has(e) && parkable(columns) ? [[e, { horizonMs: Math.min(PARK_HORIZON_MS, Math.min(...windows) / 2) }] as const] : [];
      }),
    ),
    stuckThresholds: ageThresholds(rulesOf('order'), features),
    /**
     * Entity types with a rule that may read channel or merchant context: a fact of a context
     * entity, or a derived or baseline fact (which may build on one). Candidates of the other
     * types never wait for the context.
     */
    contextReaders: new Set(
      enabled
        .filter((r) =>
          r.facts.some((id) => {
            const info = ruleSet.catalog.facts.get(id);
            return !info || info.kind !== 'feature' || (CONTEXT_ENTITIES as readonly EntityType[]).includes(info.entity);
          }),
        )
        .map((r) => r.entity),
    ),
  };
}
export type PreparedRules = ReturnType<typeof prepare>;
