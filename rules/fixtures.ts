import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRfc3339, validateEvent, type PaymentEvent } from '../contract/index.ts';
import { canRead } from './catalog.ts';
import { createRuleEvaluator, type Hit } from './evaluate.ts';
import { computeFacts, timed } from './features.ts';
import type { RuleSet } from './load.ts';
import { childPath, compileSchema, didYouMean, parseJson, schemaProblems, type RuleProblem } from './problems.ts';
import { entityKeyField, FixtureFileSchema, type EntityType, type Facts } from './schema.ts';

/** The bundled fixtures, one per shipped rule. */
export const defaultFixturesPath = fileURLToPath(new URL('./tests', import.meta.url));

/** One fixture case with its facts resolved (computed from events, then overridden by given facts). */
export interface ResolvedCase {
  name: string;
  entity: EntityType;
  entityId: string;
  facts: Facts;
  expect: readonly string[];
  expectRecommendedAction: Readonly<Record<string, string>>;
}

/** A parsed fixture file. */
export interface Fixture {
  file: string;
  description: string | undefined;
  cases: readonly ResolvedCase[];
}

/** The outcome of one fixture case. */
export interface CaseResult {
  file: string;
  name: string;
  passed: boolean;
  /** Rule ids that fired. */
  hits: string[];
  /** Why it failed, one line each; empty when it passed. */
  failures: string[];
}

export interface FixtureReport {
  passed: number;
  failed: number;
  results: CaseResult[];
}

const checkFixture = compileSchema(FixtureFileSchema);

/**
 * Validates a fixture file against the rule set: schema, and every fact and expected rule id
 * must exist and belong to the case's entity, so a typo cannot make a "must not fire" case
 * pass by accident.
 */
export function parseFixture(file: string, text: string, ruleSet: RuleSet): { ok: true; fixture: Fixture } | { ok: false; problems: RuleProblem[] } {
  const parsed = parseJson(file, text);
  if (!parsed.ok) return { ok: false, problems: [parsed.problem] };
  const value = parsed.value;
  if (!checkFixture(value)) return { ok: false, problems: schemaProblems(file, FixtureFileSchema, checkFixture.errors) };
  const problems: RuleProblem[] = [];
  const { facts } = ruleSet.catalog;
  const ruleIds = new Map(ruleSet.rules.map((r) => [r.id, r]));
  const cases: ResolvedCase[] = [];
  value.cases.forEach((c, i) => {
    const at = childPath(childPath('$', 'cases'), i);
    const given = c.facts ?? {};
    let computed: Record<string, number> = {};
    if (c.events !== undefined || c.now !== undefined) {
      const nowMs = c.now === undefined ? null : parseRfc3339(c.now);
      if (nowMs === null)
        problems.push({
          file,
          path: childPath(at, 'now'),
          message: 'cases with "events" need "now", an RFC 3339 time such as "2026-11-25T10:30:00Z"; windows end there.',
        });
      const events: PaymentEvent[] = [];
      (c.events ?? []).forEach((raw, j) => {
        const checked = validateEvent(raw);
        if (checked.ok) events.push(checked.value.event);
        else problems.push({ file, path: childPath(childPath(at, 'events'), j), message: `not a valid payment event: ${checked.reason}.` });
      });
      if (nowMs !== null) {
        // Context features come from the channel and merchant of the entity's latest event, as live.
        const own = events.filter((e) => (e as Record<string, unknown>)[entityKeyField[c.entity]] === c.entity_id);
        const last = own[own.length - 1];
        computed = computeFacts(
          ruleSet.catalog,
          { entity: c.entity, entityId: c.entity_id, channel: last?.channel, merchantId: last?.merchant_id },
          timed(events),
          nowMs,
        );
      }
    }
    cases.push({
      name: c.name,
      entity: c.entity,
      entityId: c.entity_id,
      facts: { ...computed, ...given },
      expect: c.expect,
      expectRecommendedAction: c.expect_recommended_action ?? {},
    });
    for (const name of Object.keys(given)) {
      const info = facts.get(name);
      const path = childPath(childPath(at, 'facts'), name);
      if (!info)
        problems.push({ file, path, message: `unknown fact "${name}".${didYouMean(name, facts.keys())} Use feature and baseline ids from features.json.` });
      else if (info.kind === 'derived') problems.push({ file, path, message: `"${name}" is derived from other facts; give its inputs instead.` });
      else if (!canRead(c.entity, info.entity))
        problems.push({ file, path, message: `"${name}" is kept per ${info.entity}; a ${c.entity} case can use ${c.entity}, channel and merchant facts.` });
    }
    c.expect.forEach((id, j) => {
      const rule = ruleIds.get(id);
      const path = childPath(childPath(at, 'expect'), j);
      if (!rule) problems.push({ file, path, message: `no rule "${id}" in the rule set.${didYouMean(id, ruleIds.keys())}` });
      else if (rule.entity !== c.entity) problems.push({ file, path, message: `rule "${id}" is about ${rule.entity}, but this case evaluates ${c.entity}.` });
    });
    for (const id of Object.keys(c.expect_recommended_action ?? {})) {
      if (!c.expect.includes(id))
        problems.push({
          file,
          path: childPath(childPath(at, 'expect_recommended_action'), id),
          message: `"${id}" is not in "expect"; only rules expected to fire have advice to check.`,
        });
    }
  });
  if (problems.length) return { ok: false, problems };
  return { ok: true, fixture: { file, description: value.description, cases } };
}

/** Reads fixture files from a folder (every *.json, sorted) or one file, and validates them. */
export async function loadFixtures(path: string, ruleSet: RuleSet): Promise<{ ok: true; fixtures: Fixture[] } | { ok: false; problems: RuleProblem[] }> {
  let files: string[];
  try {
    files = (await stat(path)).isDirectory()
      ? (await readdir(path))
          .filter((n) => n.endsWith('.json'))
          .sort()
          .map((n) => join(path, n))
      : [path];
  } catch (err) {
    return { ok: false, problems: [{ file: path, path: '$', message: `cannot read fixtures: ${(err as Error).message}.` }] };
  }
  if (files.length === 0) return { ok: false, problems: [{ file: path, path: '$', message: 'no *.json fixture files here.' }] };
  const fixtures: Fixture[] = [];
  const problems: RuleProblem[] = [];
  for (const file of files) {
    const result = parseFixture(file, await readFile(file, 'utf8'), ruleSet);
    if (result.ok) fixtures.push(result.fixture);
    else problems.push(...result.problems);
  }
  return problems.length ? { ok: false, problems } : { ok: true, fixtures };
}

function judge(c: ResolvedCase, hits: Hit[]): string[] {
  const failures: string[] = [];
  const got = hits.map((h) => h.ruleId);
  const missing = c.expect.filter((id) => !got.includes(id));
  const extra = got.filter((id) => !c.expect.includes(id));
  if (missing.length) failures.push(`expected ${missing.join(', ')} to fire, but ${missing.length === 1 ? 'it' : 'they'} did not`);
  if (extra.length) failures.push(`expected ${extra.join(', ')} not to fire, but ${extra.length === 1 ? 'it' : 'they'} did`);
  for (const [id, text] of Object.entries(c.expectRecommendedAction)) {
    const hit = hits.find((h) => h.ruleId === id);
    if (hit && !hit.recommendedAction.includes(text))
      failures.push(`${id} advice should contain ${JSON.stringify(text)}, got ${JSON.stringify(hit.recommendedAction)}`);
  }
  return failures;
}

/** Runs every case through a rule evaluator: exactly the expected rules must fire. */
export async function runFixtures(ruleSet: RuleSet, fixtures: readonly Fixture[]): Promise<FixtureReport> {
  const evaluator = createRuleEvaluator(ruleSet);
  const results: CaseResult[] = [];
  for (const fixture of fixtures) {
    for (const c of fixture.cases) {
      const hits = await evaluator.evaluate(c.entity, c.entityId, c.facts);
      const failures = judge(c, hits);
      results.push({ file: fixture.file, name: c.name, passed: failures.length === 0, hits: hits.map((h) => h.ruleId), failures });
    }
  }
  const passed = results.filter((r) => r.passed).length;
  return { passed, failed: results.length - passed, results };
}
