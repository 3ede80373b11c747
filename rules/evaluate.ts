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
