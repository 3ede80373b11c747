import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDuration } from './duration.ts';
import { PaysentinelError } from '../errors/index.ts';
import { canRead, deepFreeze, isObjectFact, parseFeatureCatalog, type FactCatalog } from './catalog.ts';
import { resolveOperator } from './operators.ts';
import { placeholderFormats, placeholders, type Placeholder } from './render.ts';
import { MAX_MESSAGE_CHARS, MESSAGE_SUFFIX, messageRuleId, parseMessageTemplate, type MessagePart } from './messages.ts';
import { childPath, compileSchema, didYouMean, formatProblem, parseJson, pointerToPath, schemaProblems, type RuleProblem } from './problems.ts';
import { actions, RuleFileSchema, type CommandType, type Condition, type EntityType, type RuleAction, type Severity } from './schema.ts';

/** The bundled rule definitions and feature catalog, found next to this module. */
export const defaultRulesPath = fileURLToPath(new URL('./definitions', import.meta.url));
export const defaultFeaturesPath = fileURLToPath(new URL('./features.json', import.meta.url));

/** Longest cooldown accepted: longer ones are almost always a unit mistake (30d vs 30m). */
const MAX_COOLDOWN_MS = 30 * 86_400_000;
/** Longest escalate_after and block ttl accepted, for the same reason. */
const MAX_ESCALATE_MS = 7 * 86_400_000;

/** Which entities each command can target: the target fields come from the case's entity. */
const commandEntities: Readonly<Record<CommandType, readonly EntityType[]>> = {
  requery_status: ['order'],
  refund: ['order'],
  retry: ['order'],
  block: ['ip', 'device', 'user'],
};

/** A validated rule, ready to evaluate. Frozen, with everything the case stage needs. */
export interface LoadedRule {
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly severity: Severity;
  readonly enabled: boolean;
  readonly entity: EntityType;
  /** As written, e.g. "30m". */
  readonly cooldown: string;
  readonly cooldownMs: number;
  readonly action: RuleAction;
  /** automatic rules: what the gateway is told to do for each case (`ttlMs` for a block). */
  readonly command?: { readonly type: CommandType; readonly ttlMs?: number };
  /** automatic rules: how long the command's outcome may take before support gets the case. */
  readonly escalateAfterMs?: number;
  /** automatic rules: support sees the case too while the system handles it. */
  readonly alsoNotifySupport: boolean;
  /** Conditions that show the situation is over: the system resolves the case when they hold. */
  readonly resolveWhen?: Readonly<Condition>;
  /** The template, with {placeholders}; `Hit.recommendedAction` is the rendered text. */
  readonly recommendedAction: string;
  /** json-rules-engine priority. @default 1 */
  readonly priority: number;
  readonly conditions: Readonly<Condition>;
  /** Content hash (12 hex digits) of the rule and of the definitions of the facts it reads. */
  readonly version: string;
  /** The file the rule came from. */
  readonly file: string;
  /** Every fact the conditions and the recommended action read, in first-use order. */
  readonly facts: readonly string[];
  /**
   * The customer message of the rule's cases (`<id>.message.txt` beside the rule file), or null
   * when it has none. Not part of `version`: the wording does not change what the rule detects.
   */
  readonly customerMessage: { readonly file: string; readonly text: string; readonly parts: readonly MessagePart[] } | null;
  /**
   * What the rule is evaluated on: `events` (live detection, backtests) or `statements` (the
   * breaks statement reconciliation finds), from the kind of the facts it reads.
   */
  readonly source: FactSource;
}

/** Where a rule's facts come from: events (live detection) or statement reconciliation. */
export type FactSource = 'events' | 'statements';

/** A validated, frozen set of rules with the catalog they were checked against. */
export interface RuleSet {
  readonly rules: readonly LoadedRule[];
  readonly catalog: FactCatalog;
  /** Hash of every rule version: changes whenever any rule or fact it reads changes. */
  readonly version: string;
}

/** Loading is an expected outcome either way: a rule set, or every problem found. */
export type RuleSetResult = { ok: true; ruleSet: RuleSet } | { ok: false; problems: readonly RuleProblem[] };

/** One rule file's text and the name to report it by. */
export interface RuleSource {
  file: string;
  text: string;
}

const checkRule = compileSchema(RuleFileSchema);
const binomialKeys = ['successes', 'trials', 'rate', 'baseline', 'p_value', 'z_score'];
const booleanKeys = ['all', 'any', 'not'] as const;
const sharedKeys = new Set(['name', 'priority']);
const leafKeys = new Set(['fact', 'operator', 'value', 'path', 'params', 'name', 'priority']);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ConditionContext {
  file: string;
  entity: EntityType;
  catalog: FactCatalog;
  problems: RuleProblem[];
  facts: string[];
}

function checkFactRef(ctx: ConditionContext, fact: unknown, path: string): boolean {
  const { file, entity, catalog, problems } = ctx;
  if (typeof fact !== 'string' || fact === '') {
    problems.push({ file, path, message: 'needs the name of a fact from features.json, e.g. "ip_attempts_10m".' });
    return false;
  }
  const info = catalog.facts.get(fact);
  if (!info) {
    const readable = [...catalog.facts.values()].filter((f) => canRead(entity, f.entity)).map((f) => f.id);
    problems.push({
      file,
      path,
      message:
        `unknown fact "${fact}".${didYouMean(fact, catalog.facts.keys())} Facts a rule about ${entity} can use: ${readable.join(', ')}. New ` +
        `features go in features.json.`,
    });
    return false;
  }
  if (!canRead(entity, info.entity)) {
    problems.push({
      file,
      path,
      message: `fact "${fact}" is kept per ${info.entity}, but this rule is about ${entity}; use a fact of ${entity}, channel or merchant, or change "entity".`,
    });
    return false;
  }
  if (!ctx.facts.includes(fact)) ctx.facts.push(fact);
  return true;
}

/** Walks a condition tree and reports what json-rules-engine would only discover at run time. */
function checkCondition(ctx: ConditionContext, node: unknown, path: string, top: boolean): void {
  const { file, problems } = ctx;
  if (!isRecord(node)) {
    problems.push({
      file,
      path,
      message: 'a condition is an object: { "all": [...] }, { "any": [...] }, { "not": {...} } or { "fact", "operator", "value" }.',
    });
    return;
  }
  if ('condition' in node) {
    problems.push({ file, path: childPath(path, 'condition'), message: 'shared condition references are not supported; write the condition inline.' });
    return;
  }
  const bools = booleanKeys.filter((k) => k in node);
  if (bools.length > 1) {
    problems.push({
      file,
      path,
      message: `has both ${bools.map((b) => `"${b}"`).join(' and ')}; nest them instead, e.g. { "all": [ { "any": [...] }, ... ] }.`,
    });
    return;
  }
  const [bool] = bools;
  if (top && bool === undefined) {
    problems.push({
      file,
      path,
      message: 'conditions must start with "all", "any" or "not", e.g. { "all": [ { "fact": ..., "operator": ..., "value": ... } ] }.',
    });
    return;
  }
  const allowed = bool ? new Set([bool, ...sharedKeys]) : leafKeys;
  for (const key of Object.keys(node)) {
    if (!allowed.has(key))
      problems.push({
        file,
        path: childPath(path, key),
        message: `unknown key "${key}".${didYouMean(key, allowed)} Allowed here: ${[...allowed].join(', ')}.`,
      });
  }
  if ('name' in node && typeof node.name !== 'string')
    problems.push({ file, path: childPath(path, 'name'), message: '"name" is a label for debugging output: a string.' });
  if ('priority' in node && !(Number.isInteger(node.priority) && (node.priority as number) >= 1)) {
    problems.push({ file, path: childPath(path, 'priority'), message: '"priority" is an integer >= 1 (higher is evaluated first).' });
  }
  if ('params' in node && !isRecord(node.params))
    problems.push({ file, path: childPath(path, 'params'), message: '"params" is an object passed to the fact, e.g. { "window": "10m" }.' });
  if (bool === 'all' || bool === 'any') {
    const list = node[bool];
    if (!Array.isArray(list) || list.length === 0) {
      problems.push({ file, path: childPath(path, bool), message: `"${bool}" needs a non-empty array of conditions.` });
      return;
    }
    list.forEach((c, i) => checkCondition(ctx, c, childPath(childPath(path, bool), i), false));
    return;
  }
  if (bool === 'not') {
    if (Array.isArray(node.not))
      problems.push({ file, path: childPath(path, 'not'), message: '"not" takes one condition, not an array; wrap several in { "all": [...] }.' });
    else checkCondition(ctx, node.not, childPath(path, 'not'), false);
    return;
  }
  for (const key of ['fact', 'operator', 'value'] as const) {
    if (!(key in node))
      problems.push({ file, path, message: `missing "${key}"; a condition is { "fact": "<fact>", "operator": "<operator>", "value": <value> }.` });
  }
  const factOk = 'fact' in node && checkFactRef(ctx, node.fact, childPath(path, 'fact'));
  const info = factOk ? ctx.catalog.facts.get(node.fact as string) : undefined;
  if (node.path !== undefined && (typeof node.path !== 'string' || !node.path.startsWith('$'))) {
    problems.push({ file, path: childPath(path, 'path'), message: 'a path is a JSONPath string starting with $, e.g. "$.p_value".' });
  } else if (node.path !== undefined && factOk && !isObjectFact(info)) {
    problems.push({ file, path: childPath(path, 'path'), message: `fact "${String(node.fact)}" is a number; remove "path".` });
  }
  if (!('operator' in node)) return;
  if (typeof node.operator !== 'string') {
    problems.push({ file, path: childPath(path, 'operator'), message: 'needs an operator name, e.g. "greaterThanInclusive".' });
    return;
  }
  const op = resolveOperator(node.operator);
  if (!op) {
    const known = [
      'equal',
      'notEqual',
      'in',
      'notIn',
      'contains',
      'doesNotContain',
      'lessThan',
      'lessThanInclusive',
      'greaterThan',
      'greaterThanInclusive',
      'significantlyAbove',
      'olderThan',
    ];
    problems.push({
      file,
      path: childPath(path, 'operator'),
      message:
        `unknown operator "${node.operator}".${didYouMean(node.operator.split(':').pop()!, known)} Known: ${known.join(', ')}; decorators such ` +
        `as not:equal are allowed (see rules/README.md).`,
    });
    return;
  }
  if (factOk && op.base === 'significantlyAbove' && (!isObjectFact(info) || node.path !== undefined)) {
    problems.push({
      file,
      path: childPath(path, 'fact'),
      message: 'significantlyAbove compares a binomial derived fact (e.g. "device_failure_stats_15m") as a whole; use such a fact and no path.',
    });
  } else if (factOk && op.base !== 'significantlyAbove' && isObjectFact(info) && node.path === undefined) {
    problems.push({
      file,
      path: childPath(path, 'fact'),
      message:
        `fact "${String(node.fact)}" is an object { successes, trials, rate, baseline, p_value, z_score }: add a path such as "$.p_value", or ` +
        `use operator significantlyAbove.`,
    });
  }
  if (!('value' in node)) return;
  const value = node.value;
  if (isRecord(value) && 'fact' in value) {
    const at = childPath(path, 'value');
    checkFactRef(ctx, value.fact, childPath(at, 'fact'));
    for (const key of Object.keys(value)) {
      if (key !== 'fact' && key !== 'path' && key !== 'params')
        problems.push({ file, path: childPath(at, key), message: `unknown key "${key}" in a fact reference; it takes fact, path and params.` });
    }
    return;
  }
  const wrong = op.check(value);
  if (wrong) problems.push({ file, path: childPath(path, 'value'), message: `operator "${node.operator}" ${wrong}; got ${JSON.stringify(value)}.` });
}

function checkPlaceholders(ctx: ConditionContext, template: string): void {
  const path = childPath('$', 'recommended_action');
  const fail = (p: Placeholder, message: string) => ctx.problems.push({ file: ctx.file, path, message: `placeholder {${p.raw}}: ${message}` });
  for (const p of placeholders(template)) {
    if (!p.valid) {
      fail(p, 'not a placeholder; write {fact}, {fact.key} or {fact|format}, e.g. {ip_attempts_10m} or {ip_failure_rate_10m|percent}.');
      continue;
    }
    if (p.format !== undefined && !placeholderFormats.includes(p.format)) fail(p, `unknown format "${p.format}"; use one of ${placeholderFormats.join(', ')}.`);
    if (p.name === 'entity_id' || p.name === 'entity_type') continue;
    const before = ctx.problems.length;
    if (!checkFactRef(ctx, p.name, path)) {
      const added = ctx.problems[before];
      if (added) added.message = `placeholder {${p.raw}}: ${added.message} {entity_id} and {entity_type} are also available.`;
      continue;
    }
    const objectFact = isObjectFact(ctx.catalog.facts.get(p.name));
    if (objectFact && p.keys.length === 0) fail(p, `"${p.name}" is an object; name a key, e.g. {${p.name}.p_value}.`);
    if (objectFact && p.keys.length > 0 && !binomialKeys.includes(p.keys[0]!))
      fail(p, `"${p.name}" has no key "${p.keys[0]}"; keys: ${binomialKeys.join(', ')}.`);
    if (!objectFact && p.keys.length > 0) fail(p, `"${p.name}" is a number; remove ".${p.keys.join('.')}".`);
  }
}

/** Actions of earlier rule files, and what replaced them. */
const legacyActions: Readonly<Record<string, string>> = {
  auto_handle: '"auto_handle" is now "automatic", with a "command" (e.g. { "type": "requery_status" }) and "escalate_after".',
  log_only: '"log_only" was removed: every case is handled by someone; use "notify_support", or set "enabled": false to keep the rule without cases.',
};

function renameLegacyAction(file: string, value: Record<string, unknown>, problems: RuleProblem[]): void {
  const hint = typeof value.action === 'string' ? legacyActions[value.action] : undefined;
  const p = problems.find((q) => q.path === '$.action');
  if (hint && p) p.message = hint;
}

/** A duration field of the handling part: its milliseconds, or a problem. */
function durationField(file: string, raw: unknown, path: string, problems: RuleProblem[]): number | undefined {
  if (typeof raw !== 'string' || problems.some((p) => p.path === path)) {
    const p = problems.find((q) => q.path === path);
    if (p) p.message = `${JSON.stringify(raw)} is not a duration: write a whole number and a unit s, m, h or d, e.g. "10m", "1h".`;
    return undefined;
  }
  const ms = parseDuration(raw) ?? 0;
  if (ms > MAX_ESCALATE_MS) problems.push({ file, path, message: `"${raw}" is longer than 7 days; did you mean minutes (m) or hours (h)?` });
  return ms;
}

/**
 * What the schema cannot say about handling: an automatic rule needs a command that fits its
 * entity and an escalate_after; other rules take neither.
 */
function checkHandling(
  file: string,
  value: Record<string, unknown>,
  entity: EntityType | undefined,
  problems: RuleProblem[],
): { command?: { type: CommandType; ttlMs?: number }; escalateAfterMs?: number } {
  const automatic = value.action === 'automatic';
  const command = isRecord(value.command) ? value.command : undefined;
  if (!automatic) {
    // An unknown action is reported already; what it would allow is anyone's guess.
    if (!(actions as readonly unknown[]).includes(value.action)) return {};
    for (const key of ['command', 'escalate_after', 'also_notify_support'])
      if (key in value) problems.push({ file, path: `$.${key}`, message: `only automatic rules take "${key}"; set "action": "automatic" or remove it.` });
    return {};
  }
  if (!('command' in value))
    problems.push({ file, path: '$', message: 'an automatic rule needs "command", e.g. { "type": "requery_status" }; or use "action": "notify_support".' });
  if (!('escalate_after' in value))
    problems.push({
      file,
      path: '$',
      message: 'an automatic rule needs "escalate_after" (e.g. "10m"): when the outcome has not come back by then, support gets the case.',
    });
  const escalateAfterMs = durationField(file, value.escalate_after, '$.escalate_after', problems);
  const type = command && typeof command.type === 'string' ? (command.type as CommandType) : undefined;
  if (!type || !(type in commandEntities)) return { escalateAfterMs };
  const fits = commandEntities[type];
  if (entity && !fits.includes(entity))
    problems.push({
      file,
      path: '$.command.type',
      message: `a ${type} command targets ${fits.join(' or ')}, but this rule is about ${entity}; change "entity" or the command.`,
    });
  let ttlMs: number | undefined;
  if (type === 'block') {
    if (command!.ttl === undefined) problems.push({ file, path: '$.command', message: 'a block needs "ttl": how long the entity stays blocked, e.g. "1h".' });
    else ttlMs = durationField(file, command!.ttl, '$.command.ttl', problems);
  } else if (command!.ttl !== undefined)
    problems.push({ file, path: '$.command.ttl', message: `only a block takes "ttl"; remove it from the ${type} command.` });
  return { command: ttlMs === undefined ? { type } : { type, ttlMs }, escalateAfterMs };
}

/** 12 hex digits of sha256 over canonical JSON (sorted keys), so formatting never changes a version. */
function contentHash(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : isRecord(v)
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical(v[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(value)))
    .digest('hex')
    .slice(0, 12);
}

/** Validates one rule file against the catalog; the rule, or the problems found. */
function parseRule(source: RuleSource, catalog: FactCatalog): { rule?: LoadedRule; problems: RuleProblem[] } {
  const { file } = source;
  const parsed = parseJson(file, source.text);
  if (!parsed.ok) return { problems: [parsed.problem] };
  const value = parsed.value;
  if (!isRecord(value))
    return { problems: [{ file, path: '$', message: 'a rule file holds one JSON object: { "id": ..., "conditions": { "all": [...] }, ... }.' }] };
  const schemaOk = checkRule(value);
  const walked = (p: string) => ['/conditions', '/resolve_when'].some((top) => p === top || p.startsWith(`${top}/`));
  const problems = schemaOk ? [] : schemaProblems(file, RuleFileSchema, checkRule.errors, walked);
  renameLegacyAction(file, value, problems);
  const entity = typeof value.entity === 'string' ? (value.entity as EntityType) : undefined;
  const ctx: ConditionContext = { file, entity: entity ?? 'order', catalog, problems, facts: [] };
  // Fact checks need a valid entity; without one the schema problem above says what to fix.
  if (entity && !problems.some((p) => p.path === '$.entity')) {
    if ('conditions' in value) checkCondition(ctx, value.conditions, '$.conditions', true);
    if ('resolve_when' in value) checkCondition(ctx, value.resolve_when, '$.resolve_when', true);
    if (typeof value.recommended_action === 'string') checkPlaceholders(ctx, value.recommended_action);
  }
  let cooldownMs = 0;
  if (typeof value.cooldown === 'string' && !problems.some((p) => p.path === '$.cooldown')) {
    cooldownMs = parseDuration(value.cooldown) ?? 0;
    if (cooldownMs > MAX_COOLDOWN_MS)
      problems.push({ file, path: '$.cooldown', message: `"${value.cooldown}" is longer than 30 days; did you mean minutes (m) or hours (h)?` });
  } else if (problems.some((p) => p.path === '$.cooldown')) {
    const p = problems.find((q) => q.path === '$.cooldown')!;
    p.message = `cooldown ${JSON.stringify(value.cooldown)} is not a duration: write a whole number and a unit s, m, h or d, e.g. "30m", "2h", "1d".`;
  }
  const handling = checkHandling(file, value, entity, problems);
  if (typeof value.id === 'string' && basename(file) !== `${value.id}.json` && basename(file).endsWith('.json')) {
    problems.push({ file, path: '$.id', message: `the id "${value.id}" does not match the file name; rename the file to ${value.id}.json or change the id.` });
  }
  const statementFacts = ctx.facts.filter((id) => catalog.facts.get(id)?.kind === 'statement');
  const eventFacts = ctx.facts.filter((id) => catalog.facts.get(id)?.kind !== 'statement');
  if (statementFacts.length > 0 && eventFacts.length > 0)
    problems.push({
      file,
      path: '$.conditions',
      message:
        `reads statement facts (${statementFacts.join(', ')}) and event facts (${eventFacts.join(', ')}): ` +
        'a rule on statement breaks is evaluated when statements are reconciled, where event features are not computed; read only one kind.',
    });
  if (problems.length) return { problems };
  if (!schemaOk) {
    // The walker missed something the schema caught: report the deepest schema error rather than load a bad rule.
    const deepest = [...(checkRule.errors ?? [])].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
    const where = deepest ? pointerToPath(deepest.instancePath) : '$.conditions';
    return {
      problems: [
        { file, path: where, message: `does not match the rule format (${deepest?.message ?? 'see rules/rule.schema.json'}); compare with rules/README.md.` },
      ],
    };
  }
  if (!checkRule(value)) return { problems: [{ file, path: '$', message: 'does not match rules/rule.schema.json.' }] };
  const factDefs = Object.fromEntries(ctx.facts.map((id) => [id, catalog.facts.get(id)!.def]));
  const { $schema: _ignored, ...content } = value;
  const rule: LoadedRule = deepFreeze({
    id: value.id,
    title: value.title,
    description: value.description,
    severity: value.severity,
    enabled: value.enabled,
    entity: value.entity,
    cooldown: value.cooldown,
    cooldownMs,
    action: value.action,
    ...handling,
    alsoNotifySupport: value.also_notify_support ?? false,
    ...(value.resolve_when ? { resolveWhen: structuredClone(value.resolve_when) } : {}),
    recommendedAction: value.recommended_action,
    priority: value.priority ?? 1,
    conditions: structuredClone(value.conditions),
    version: contentHash({ rule: content, facts: factDefs }),
    file,
    facts: ctx.facts,
    customerMessage: null,
    source: statementFacts.length > 0 ? 'statements' : 'events',
  });
  return { rule, problems: [] };
}

/**
 * Attaches each customer message to its rule: a message for a rule that is not in the set, or for
 * a rule not about orders (its placeholders are an order's facts), is a problem.
 */
function attachMessages(rules: LoadedRule[], messages: readonly RuleSource[], problems: RuleProblem[]): void {
  for (const m of messages) {
    const id = messageRuleId(basename(m.file));
    const at = rules.findIndex((r) => r.id === id);
    const rule = rules[at];
    if (!rule) {
      problems.push({
        file: m.file,
        path: '$',
        message:
          `there is no rule "${id}" in this rule set; a customer message is named <rule_id>${MESSAGE_SUFFIX} after an order rule (rename ` +
          `or remove this file).`,
      });
      continue;
    }
    if (rule.entity !== 'order') {
      problems.push({
        file: m.file,
        path: '$',
        message:
          `rule "${rule.id}" is about ${rule.entity}, but customer messages are for order rules: their placeholders are the order's ` +
          `facts. Remove this file.`,
      });
      continue;
    }
    const parsed = parseMessageTemplate(m.file, m.text);
    if (!parsed.ok) problems.push(...parsed.problems);
    else rules[at] = Object.freeze({ ...rule, customerMessage: deepFreeze({ file: m.file, text: m.text, parts: parsed.parts }) });
  }
}

/**
 * Validates rule files against a feature catalog: schema, unknown facts and operators,
 * operator values, placeholders, cooldowns, file names and duplicate ids; and the customer
 * messages beside them (`<rule_id>.message.txt`). Pure: no I/O.
 */
export function parseRuleSet(sources: readonly RuleSource[], catalog: FactCatalog, messages: readonly RuleSource[] = []): RuleSetResult {
  const problems: RuleProblem[] = [];
  const rules: LoadedRule[] = [];
  const seen = new Map<string, string>();
  for (const source of sources) {
    const { rule, problems: found } = parseRule(source, catalog);
    problems.push(...found);
    if (!rule) continue;
    const first = seen.get(rule.id);
    if (first) {
      problems.push({ file: source.file, path: '$.id', message: `duplicate rule id "${rule.id}", also used by ${first}; every rule needs its own id.` });
      continue;
    }
    seen.set(rule.id, source.file);
    rules.push(rule);
  }
  attachMessages(rules, messages, problems);
  if (problems.length) return { ok: false, problems };
  rules.sort((a, b) => a.id.localeCompare(b.id));
  const version = contentHash(rules.map((r) => [r.id, r.version]));
  return { ok: true, ruleSet: Object.freeze({ rules: Object.freeze(rules), catalog, version }) };
}

/** Reads rule sources from a folder (every *.json in it, sorted) or a single file. */
export async function readRuleSources(path: string): Promise<RuleSource[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [{ file: path, text: await readFile(path, 'utf8') }];
  const names = (await readdir(path)).filter((n) => n.endsWith('.json')).sort();
  return Promise.all(names.map(async (n) => ({ file: join(path, n), text: await readFile(join(path, n), 'utf8') })));
}

/** Bytes read of a customer message file at most: four per character of the longest template. */
const MAX_MESSAGE_BYTES = MAX_MESSAGE_CHARS * 4;

/**
 * Reads the customer messages beside the rules: every *.message.txt of a folder, or the one beside
 * a single rule file. A file too large to be a message is a problem, and is not read.
 */
export async function readMessageSources(path: string): Promise<{ sources: RuleSource[]; problems: RuleProblem[] }> {
  const info = await stat(path);
  const files = info.isDirectory()
    ? (await readdir(path))
        .filter((n) => n.endsWith(MESSAGE_SUFFIX))
        .sort()
        .map((n) => join(path, n))
    : [path.replace(/\.json$/, MESSAGE_SUFFIX)].filter((f) => f !== path);
  const sources: RuleSource[] = [];
  const problems: RuleProblem[] = [];
  for (const file of files) {
    const size = await stat(file).then(
      (s) => s.size,
      () => -1,
    );
    if (size < 0) continue;
    if (size > MAX_MESSAGE_BYTES)
      problems.push({ file, path: '$', message: `is ${size} bytes; a customer message has at most ${MAX_MESSAGE_CHARS} characters.` });
    else sources.push({ file, text: await readFile(file, 'utf8') });
  }
  return { sources, problems };
}

/** Where to load rules from. */
export interface LoadRuleSetOptions {
  /** A folder of rule files or one rule file. @default the bundled rules/definitions */
  rulesPath?: string;
  /** The feature catalog. @default the bundled rules/features.json */
  featuresPath?: string;
}

/** Reads and validates a feature catalog file. */
export async function loadFeatureCatalog(
  featuresPath = defaultFeaturesPath,
): Promise<{ ok: true; catalog: FactCatalog } | { ok: false; problems: readonly RuleProblem[] }> {
  let text: string;
  try {
    text = await readFile(featuresPath, 'utf8');
  } catch (err) {
    return {
      ok: false,
      problems: [{ file: featuresPath, path: '$', message: `cannot read the feature catalog: ${(err as Error).message}. Pass --features FILE.` }],
    };
  }
  return parseFeatureCatalog(featuresPath, text);
}

/** Reads and validates a folder of rules and the feature catalog. Problems are values, not throws. */
export async function loadRuleSet(options: LoadRuleSetOptions = {}): Promise<RuleSetResult> {
  const rulesPath = options.rulesPath ?? defaultRulesPath;
  const catalog = await loadFeatureCatalog(options.featuresPath);
  if (!catalog.ok) return catalog;
  let sources: RuleSource[];
  let messages: Awaited<ReturnType<typeof readMessageSources>>;
  try {
    sources = await readRuleSources(rulesPath);
    messages = await readMessageSources(rulesPath);
  } catch (err) {
    return {
      ok: false,
      problems: [{ file: rulesPath, path: '$', message: `cannot read rules: ${(err as Error).message}. Pass a folder of rule files or one rule file.` }],
    };
  }
  if (sources.length === 0)
    return { ok: false, problems: [{ file: rulesPath, path: '$', message: 'no *.json rule files here; add one file per rule, named <id>.json.' }] };
  const result = parseRuleSet(sources, catalog.catalog, messages.sources);
  if (messages.problems.length === 0) return result;
  return { ok: false, problems: [...messages.problems, ...(result.ok ? [] : result.problems)] };
}

/** `loadRuleSet` for start-up paths where invalid rules are fatal: throws CONFIG_INVALID listing every problem. */
export async function loadRuleSetOrThrow(options: LoadRuleSetOptions = {}): Promise<RuleSet> {
  const result = await loadRuleSet(options);
  if (result.ok) return result.ruleSet;
  throw new PaysentinelError('CONFIG_INVALID', `invalid rules:\n${result.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
}
