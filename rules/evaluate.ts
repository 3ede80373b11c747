import { Engine, type RuleProperties, type TopLevelCondition } from 'json-rules-engine';
import { completeFacts } from './catalog.ts';
import type { LoadedRule, RuleSet } from './load.ts';
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

/** One engine per entity type, built once; rules of other entities never run. */
export function createRuleEvaluator(ruleSet: RuleSet): RuleEvaluator {
  const engines = new Map<EntityType, { engine: Engine; rules: Map<string, LoadedRule> }>();
  for (const entity of entityTypes) {
    const rules = ruleSet.rules.filter((r) => r.enabled && r.entity === entity);
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
      if (![...slot.rules.values()].some((rule) => mayHold(rule.conditions as Condition, runtime) !== false)) return [];
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

type Condition = { all?: Condition[]; any?: Condition[]; not?: Condition; fact?: string; operator?: string; value?: unknown; path?: string };

const numeric: Record<string, (a: number, b: number) => boolean> = {
  greaterThan: (a, b) => a > b,
  greaterThanInclusive: (a, b) => a >= b,
  lessThan: (a, b) => a < b,
  lessThanInclusive: (a, b) => a <= b,
};
/** Custom operators are pure functions of (fact value, rule value): the pre-check runs them exactly as the engine does. */
// `evaluate` (validator, then callback) is what the engine calls; its typings omit it.
const custom = new Map(customOperators.map((op) => [op.name, op as unknown as { evaluate(factValue: unknown, value: unknown): boolean }]));

/**
 * A cheap pre-check with json-rules-engine's own semantics for plain numeric comparisons and
 * our custom operators: false when the conditions certainly fail, undefined when only the
 * engine can tell (other operators, paths, fact references, `not`). Never says false for a condition that could hold,
 * so skipping the engine on false changes no result; it only saves the engine's cost.
 */
export function mayHold(c: Condition, facts: Readonly<Record<string, unknown>>): boolean | undefined {
  if (c.all) {
    let unknown = false;
    for (const sub of c.all) {
      const r = mayHold(sub, facts);
      if (r === false) return false;
      if (r === undefined) unknown = true;
    }
    return unknown ? undefined : true;
  }
  if (c.any) {
    let unknown = false;
    for (const sub of c.any) {
      const r = mayHold(sub, facts);
      if (r === true) return true;
      if (r === undefined) unknown = true;
    }
    return unknown ? undefined : false;
  }
  if (c.fact === undefined || c.path !== undefined || c.operator === undefined) return undefined;
  if (c.value !== null && typeof c.value === 'object' && 'fact' in (c.value as object)) return undefined;
  const op = custom.get(c.operator);
  if (op) return op.evaluate(facts[c.fact], c.value);
  const compare = numeric[c.operator];
  if (!compare || typeof c.value !== 'number') return undefined;
  const v = facts[c.fact];
  // The engine's numeric operators are false for a value that is not a number (or absent).
  if (typeof v !== 'number' || Number.isNaN(v)) return false;
  return compare(v, c.value);
}
