import { binomialStats } from './operators.ts';
import { childPath, compileSchema, didYouMean, parseJson, schemaProblems, type RuleProblem } from './problems.ts';
import {
  contextEntities,
  FeatureCatalogSchema,
  type Baseline,
  type Derived,
  type EntityType,
  type Feature,
  type FeatureCatalog,
  type FactValue,
  type Facts,
  type StatementFact,
} from './schema.ts';

/** One fact a rule may name, with where it comes from. */
export type FactInfo =
  | { kind: 'feature'; id: string; entity: EntityType; def: Feature }
  | { kind: 'baseline'; id: string; entity: EntityType; def: Baseline }
  | { kind: 'derived'; id: string; entity: EntityType; def: Derived }
  | { kind: 'statement'; id: string; entity: EntityType; def: StatementFact };

/** The validated feature catalog, indexed by fact id. */
export interface FactCatalog {
  readonly source: Readonly<FeatureCatalog>;
  readonly facts: ReadonlyMap<string, FactInfo>;
}

/** Whether a rule (or derived fact) about `entity` may read a fact kept per `factEntity`. */
export const canRead = (entity: EntityType, factEntity: EntityType): boolean => entity === factEntity || contextEntities.includes(factEntity);

/** True for facts whose value is an object read with a path (binomial statistics). */
export const isObjectFact = (info: FactInfo | undefined): boolean => info?.kind === 'derived' && info.def.kind === 'binomial';

const checkCatalog = compileSchema(FeatureCatalogSchema);
const numericFields = new Set(['amount_minor', 'attempt']);

/** Rules each aggregation places on field / numerator / followed_by / latest, with fixes. */
function featureProblems(file: string, f: Feature, path: string): RuleProblem[] {
  const out: RuleProblem[] = [];
  const at = (key: string, message: string) => out.push({ file, path: childPath(path, key), message });
  const needs = { field: false, numerator: false, followed_by: false, latest: false };
  switch (f.aggregation) {
    case 'count':
      if (f.field !== undefined)
        at('field', 'count counts events (each event_id once) and takes no field; use "distinct_count" to count different values of a field.');
      break;
    case 'sum':
      needs.field = true;
      if (f.field !== undefined && (Array.isArray(f.field) || !numericFields.has(f.field))) {
        at('field', `sum needs one numeric field: ${[...numericFields].join(' or ')}.`);
      }
      break;
    case 'distinct_count':
      needs.field = true;
      break;
    case 'rate':
      needs.numerator = true;
      break;
    case 'followed_by':
      needs.field = needs.followed_by = true;
      break;
    case 'age':
      needs.field = needs.latest = true;
      break;
  }
  for (const key of ['field', 'numerator', 'followed_by', 'latest'] as const) {
    const present = f[key] !== undefined;
    if (needs[key] && !present) at(key, `aggregation "${f.aggregation}" needs "${key}"; see rules/README.md for an example.`);
    if (!needs[key] && present && key !== 'field')
      at(key, `"${key}" only applies to aggregation "${key === 'numerator' ? 'rate' : key === 'latest' ? 'age' : 'followed_by'}"; remove it.`);
  }
  return out;
}

function derivedProblems(file: string, d: Derived, path: string, facts: ReadonlyMap<string, FactInfo>): RuleProblem[] {
  const out: RuleProblem[] = [];
  const inputs = d.kind === 'binomial' ? (['successes', 'trials', 'baseline'] as const) : (['numerator', 'denominator'] as const);
  const allowed = d.kind === 'binomial' ? ['numerator', 'denominator'] : ['successes', 'trials', 'baseline'];
  for (const key of allowed) {
    if ((d as Record<string, unknown>)[key] !== undefined)
      out.push({ file, path: childPath(path, key), message: `"${key}" does not apply to kind "${d.kind}"; it takes ${inputs.join(', ')}.` });
  }
  for (const key of inputs) {
    const ref = d[key];
    const where = childPath(path, key);
    if (ref === undefined) {
      out.push({ file, path: where, message: `kind "${d.kind}" needs "${key}": the id of a feature or baseline.` });
      continue;
    }
    const info = facts.get(ref);
    if (!info || info.kind === 'derived' || info.kind === 'statement') {
      out.push({
        file,
        path: where,
        message: `"${ref}" is not a feature or baseline in this file.${didYouMean(ref, [...facts.keys()])} Derived facts take features and baselines only.`,
      });
    } else if (!canRead(d.entity, info.entity)) {
      out.push({
        file,
        path: where,
        message: `"${ref}" is kept per ${info.entity}, but this fact is about ${d.entity}; use a ${d.entity}, channel or merchant fact.`,
      });
    }
  }
  return out;
}

/** Validates a feature catalog (features.json): schema, duplicate ids, aggregation fields, derived inputs. */
export function parseFeatureCatalog(file: string, text: string): { ok: true; catalog: FactCatalog } | { ok: false; problems: RuleProblem[] } {
  const parsed = parseJson(file, text);
  if (!parsed.ok) return { ok: false, problems: [parsed.problem] };
  const source = parsed.value;
  if (!checkCatalog(source)) return { ok: false, problems: schemaProblems(file, FeatureCatalogSchema, checkCatalog.errors) };
  const problems: RuleProblem[] = [];
  const facts = new Map<string, FactInfo>();
  const first = new Map<string, string>();
  const add = (info: FactInfo, path: string) => {
    const previous = first.get(info.id);
    if (previous) {
      problems.push({
        file,
        path: childPath(path, 'id'),
        message: `duplicate fact id "${info.id}" (first defined at ${previous}); give one of them another name.`,
      });
      return;
    }
    first.set(info.id, path);
    facts.set(info.id, info);
  };
  source.features.forEach((def, i) => {
    const path = childPath(childPath('$', 'features'), i);
    add({ kind: 'feature', id: def.id, entity: def.entity, def }, path);
    problems.push(...featureProblems(file, def, path));
  });
  source.baselines.forEach((def, i) => {
    const path = childPath(childPath('$', 'baselines'), i);
    add({ kind: 'baseline', id: def.id, entity: def.entity, def }, path);
    if (def.unit === 'rate' && (def.default < 0 || def.default > 1)) {
      problems.push({ file, path: childPath(path, 'default'), message: `a rate is between 0 and 1; ${def.default} is not.` });
    }
  });
  (source.statements ?? []).forEach((def, i) => add({ kind: 'statement', id: def.id, entity: def.entity, def }, childPath(childPath('$', 'statements'), i)));
  const derivedPaths: string[] = [];
  source.derived.forEach((def, i) => {
    const path = childPath(childPath('$', 'derived'), i);
    derivedPaths.push(path);
    add({ kind: 'derived', id: def.id, entity: def.entity, def }, path);
  });
  source.derived.forEach((def, i) => problems.push(...derivedProblems(file, def, derivedPaths[i]!, facts)));
  if (problems.length) return { ok: false, problems };
  return { ok: true, catalog: Object.freeze({ source: deepFreeze(structuredClone(source)), facts }) };
}

/**
 * Completes the facts of one evaluation: baseline defaults where history gave no value,
 * then the derived facts of `entity`. Returns a new object; `facts` is not changed.
 */
export function completeFacts(catalog: FactCatalog, entity: EntityType, facts: Facts): Record<string, FactValue | undefined> {
  const out: Record<string, FactValue | undefined> = { ...facts };
  for (const info of catalog.facts.values()) {
    if (info.kind === 'baseline' && typeof out[info.id] !== 'number') out[info.id] = info.def.default;
  }
  const num = (id: string | undefined) => {
    const v = id === undefined ? undefined : out[id];
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  };
  for (const info of catalog.facts.values()) {
    if (info.kind !== 'derived' || !canRead(entity, info.entity) || out[info.id] !== undefined) continue;
    const d = info.def;
    if (d.kind === 'binomial') {
      const [k, n, p] = [num(d.successes), num(d.trials), num(d.baseline)];
      out[info.id] = k === undefined || n === undefined || p === undefined ? undefined : { ...binomialStats(k, n, p) };
    } else {
      const [a, b] = [num(d.numerator), num(d.denominator)];
      out[info.id] = a === undefined || b === undefined || b === 0 ? null : a / b;
    }
  }
  return out;
}

/**
 * The facts that reading `ids` needs: the ids themselves and, for each derived fact, its inputs
 * (successes, trials and baseline of a binomial test; numerator and denominator of a ratio),
 * transitively. Unknown ids are kept as they are (the rule loader has already reported them).
 */
export function factsRead(catalog: FactCatalog, ids: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const visit = (id: string | undefined) => {
    if (id === undefined || out.has(id)) return;
    out.add(id);
    const info = catalog.facts.get(id);
    if (info?.kind !== 'derived') return;
    const d = info.def;
    if (d.kind === 'binomial') [d.successes, d.trials, d.baseline].forEach(visit);
    else [d.numerator, d.denominator].forEach(visit);
  };
  for (const id of ids) visit(id);
  return out;
}

/** Freezes a JSON value and everything in it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
