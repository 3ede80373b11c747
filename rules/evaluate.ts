import { Engine, type RuleProperties, type TopLevelCondition } from 'json-rules-engine';
import { completeFacts } from './catalog.ts';
import { conditionWalker, isPlain, type Comparison, type Condition } from './conditions.ts';
import type { FactSource, LoadedRule, RuleSet } from './load.ts';
import { customOperators } from './operators.ts';
import { renderTemplate } from './render.ts';
import { entityTypes, type EntityType, type FactValue, type Facts, type RuleAction, type Severity } from './schema.ts';

/** One rule that held for one entity: what the case stage turns into (or adds to) a case. */
export interface Hit {
  ruleId: string;
  /** The rule's content hash when it fired. */
  ruleVersion: string;
  title: string;
  severity: Severity;
  action: RuleAction;
  entityType: EntityType;
  entityId: string;
  /** How long further hits update the same case. */
  cooldownMs: number;
  /** `recommended_action` with the evidence filled in. */
  recommendedAction: string;
  /** The values of every fact the rule reads (conditions and placeholders), derived ones included. */
  evidence: Record<string, FactValue | undefined>;
}

export interface RuleEvaluator {
  readonly ruleSet: RuleSet;
  /**
   * Runs the enabled rules about `entityType` on the facts of one entity and returns the
   * rules that held, in rule-id order. `facts` holds the entity's features (plus its channel
   * and merchant features, and baselines from history); missing baselines take their
   * default, derived facts are computed, and a missing feature makes its conditions false.
   */
  evaluate(entityType: EntityType, entityId: string, facts: Facts): Promise<Hit[]>;
}

/**
 * One engine per entity type, built once; rules of other entities never run. `source` keeps
 * only the rules on events (live detection) or on statement breaks; all by default (fixtures).
 */
export function createRuleEvaluator(ruleSet: RuleSet, source?: FactSource): RuleEvaluator {
  const engines = new Map<EntityType, { engine: Engine; rules: Map<string, LoadedRule> }>();
  for (const entity of entityTypes) {
    const rules = ruleSet.rules.filter((r) => r.enabled && r.entity === entity && (source === undefined || r.source === source));
    if (rules.length === 0) continue;
    // Missing features are normal (an entity seen for the first time): conditions on them are false.
    const engine = new Engine([], { allowUndefinedFacts: true });
    for (const op of customOperators) engine.addOperator(op);
    for (const rule of rules) {
      const props: RuleProperties = {
        name: rule.id,
        priority: rule.priority,
        // The loader checked the shape; json-rules-engine copies what it is given.
        conditions: structuredClone(rule.conditions) as TopLevelCondition,
        event: { type: rule.id },
      };
      engine.addRule(props);
    }
    engines.set(entity, { engine, rules: new Map(rules.map((r) => [r.id, r])) });
  }

  return {
    ruleSet,
    async evaluate(entityType, entityId, facts) {
      const slot = engines.get(entityType);
      if (!slot) return [];
      const complete = completeFacts(ruleSet.catalog, entityType, facts);
      // json-rules-engine treats a runtime fact of undefined as defined; leave those out.
      const runtime: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(complete)) if (v !== undefined) runtime[k] = v;
      // Most entities are nowhere near a threshold: skip the engine when no rule can fire.
      if (![...slot.rules.values()].some((rule) => mayHold(rule.conditions, runtime) !== false)) return [];
      const { results } = await slot.engine.run(runtime);
      const hits: Hit[] = [];
      for (const result of results) {
        const rule = slot.rules.get(result.name);
        if (!rule) continue;
        const evidence = Object.fromEntries(rule.facts.map((f) => [f, complete[f]]));
        hits.push({
          ruleId: rule.id,
          ruleVersion: rule.version,
          title: rule.title,
          severity: rule.severity,
          action: rule.action,
          entityType,
          entityId,
          cooldownMs: rule.cooldownMs,
          recommendedAction: renderTemplate(rule.recommendedAction, { entityType, entityId, facts: complete }),
          evidence,
        });
      }
      return hits.sort((a, b) => a.ruleId.localeCompare(b.ruleId));
    },
  };
}

const numeric: Record<string, (a: number, b: number) => boolean> = {
  greaterThan: (a, b) => a > b,
  greaterThanInclusive: (a, b) => a >= b,
  lessThan: (a, b) => a < b,
  lessThanInclusive: (a, b) => a <= b,
};
/** Custom operators are pure functions of (fact value, rule value): the pre-check runs them exactly as the engine does. */
// `evaluate` (validator, then callback) is what the engine calls; its typings omit it.
const custom = new Map(customOperators.map((op) => [op.name, op as unknown as { evaluate(factValue: unknown, value: unknown): boolean }]));

/** What a pre-check knows about one fact: its value, or only an interval that contains it. */
export type FactBound = { value: unknown } | { lo: number; hi: number };

/**
 * Custom operators that hold for every value above one that holds (e.g. olderThan): on an
 * interval they can be decided from its ends, like greaterThan.
 */
const increasing = new Set(['olderThan']);

/**
 * The three-valued pre-check over `all`/`any` trees: false when the conditions certainly fail,
 * true when they certainly hold, undefined when only the engine can tell. `judge` decides one
 * plain comparison the same way; a `not`, a path or a fact reference is left to the engine.
 */
function threeValued<C>(judge: (c: Comparison, ctx: C) => boolean | undefined): (c: Condition, ctx: C) => boolean | undefined {
  return conditionWalker<boolean | undefined, C>({
    all(children, walk, ctx) {
      let unknown = false;
      for (const sub of children) {
        const r = walk(sub, ctx);
        if (r === false) return false;
        if (r === undefined) unknown = true;
      }
      return unknown ? undefined : true;
    },
    any(children, walk, ctx) {
      let unknown = false;
      for (const sub of children) {
        const r = walk(sub, ctx);
        if (r === true) return true;
        if (r === undefined) unknown = true;
      }
      return unknown ? undefined : false;
    },
    not: () => undefined,
    comparison: (c, ctx) => (isPlain(c) ? judge(c, ctx) : undefined),
  });
}

/** One comparison on a known value, with the engine's semantics; undefined for operators only the engine knows. */
function onValue(operator: string, factValue: unknown, value: unknown): boolean | undefined {
  const op = custom.get(operator);
  if (op) return op.evaluate(factValue, value);
  const compare = numeric[operator];
  if (!compare || typeof value !== 'number') return undefined;
  // The engine's numeric operators are false for a value that is not a number (or absent).
  if (typeof factValue !== 'number' || Number.isNaN(factValue)) return false;
  return compare(factValue, value);
}

const onValues = threeValued<Readonly<Record<string, unknown>>>(({ fact, operator, value }, facts) => onValue(operator, facts[fact], value));

/**
 * A cheap pre-check with json-rules-engine's own semantics for plain numeric comparisons and
 * our custom operators: false when the conditions certainly fail, undefined when only the
 * engine can tell (other operators, paths, fact references, `not`). Never says false for a condition that could hold,
 * so skipping the engine on false changes no result; it only saves the engine's cost.
 */
export function mayHold(c: Condition, facts: Readonly<Record<string, unknown>>): boolean | undefined {
  return onValues(c, facts);
}

const onBounds = threeValued<ReadonlyMap<string, FactBound>>(({ fact, operator, value }, bounds) => {
  const b = bounds.get(fact);
  if (b === undefined) return undefined;
  if ('value' in b) return onValue(operator, b.value, value);
  const atLo = onValue(operator, b.lo, value);
  const atHi = onValue(operator, b.hi, value);
  const monotone = operator in numeric || increasing.has(operator);
  if (!monotone || atLo === undefined || atHi === undefined) return undefined;
  return atLo === atHi ? atLo : undefined;
});

/**
 * The same pre-check when some facts are known only as an interval (an upper bound computed
 * cheaply in SQL, say) and others not at all: an unknown fact makes its comparison undefined;
 * an interval decides a monotone comparison when both of its ends agree. Never false for
 * conditions that hold for some value inside the bounds, so it can screen entities before the
 * exact computation.
 */
export function mayHoldWithin(c: Condition, bounds: ReadonlyMap<string, FactBound>): boolean | undefined {
  return onBounds(c, bounds);
}

/** Whether any of the rules could hold for an entity whose facts lie within `bounds`. */
export function anyMayHold(rules: readonly Pick<LoadedRule, 'conditions'>[], bounds: ReadonlyMap<string, FactBound>): boolean {
  return rules.some((rule) => mayHoldWithin(rule.conditions, bounds) !== false);
}
