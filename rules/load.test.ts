import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { factsRead, parseFeatureCatalog, type FactCatalog } from './catalog.ts';
import { defaultFeaturesPath, loadRuleSet, loadRuleSetOrThrow, parseRuleSet, type RuleSource } from './load.ts';
import { formatProblem } from './problems.ts';

const featuresText = readFileSync(defaultFeaturesPath, 'utf8');
const catalogResult = parseFeatureCatalog('rules/features.json', featuresText);
if (!catalogResult.ok) throw new Error('bundled features.json is invalid');
const catalog: FactCatalog = catalogResult.catalog;

const definition = (id: string) => JSON.parse(readFileSync(new URL(`./definitions/${id}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
const source = (rule: unknown, file = `rules/definitions/${(rule as { id: string }).id}.json`): RuleSource => ({ file, text: JSON.stringify(rule, null, 2) });

/** A valid ip rule to break one way at a time. */
const probing = () => definition('ip_amount_probing');

function problemsOf(sources: RuleSource[]) {
  const result = parseRuleSet(sources, catalog);
  if (result.ok) throw new Error('expected problems, the rule set loaded');
  return result.problems;
}

describe('the bundled rules', () => {
  test('load: the seven rules on events and the seven on statement breaks, frozen, each with a 12-hex version', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const ids = (source: string) => ruleSet.rules.filter((r) => r.source === source).map((r) => r.id);
    expect(ids('events')).toEqual([
      'charged_but_failed',
      'device_failure_spike',
      'duplicate_charge',
      'ip_amount_probing',
      'retry_storm',
      'risk_review',
      'stuck_processing',
    ]);
    expect(ids('statements')).toEqual([
      'ambiguous_settlement',
      'amount_mismatch',
      'charged_not_recorded',
      'currency_mismatch',
      'duplicate_settlement',
      'recorded_not_settled',
      'refund_mismatch',
    ]);
    for (const r of ruleSet.rules) expect(r.version).toMatch(/^[0-9a-f]{12}$/);
    expect(Object.isFrozen(ruleSet.rules)).toBe(true);
    expect(Object.isFrozen(ruleSet.rules[0]!.conditions)).toBe(true);
    expect(ruleSet.rules.find((r) => r.id === 'stuck_processing')).toMatchObject({
      entity: 'order',
      cooldown: '6h',
      cooldownMs: 6 * 3_600_000,
      action: 'manual_review',
    });
  });

  test('a rule reading a statement fact and an event fact is refused: statement rules run where event features are not computed', () => {
    const rule = {
      ...definition('charged_not_recorded'),
      conditions: {
        all: [
          { fact: 'order_charged_not_recorded', operator: 'greaterThanInclusive', value: 1 },
          { fact: 'order_succeeded_attempts_24h', operator: 'equal', value: 0 },
        ],
      },
    };
    const [problem] = problemsOf([source(rule)]);
    expect(formatProblem(problem!)).toMatch(
      /charged_not_recorded\.json at \$\.conditions: reads statement facts \(order_charged_not_recorded\) and event facts \(order_succeeded_attempts_24h\)/,
    );
  });

  test('every break kind has one statement fact and one enabled rule reading it', async () => {
    const { statementBreakKinds } = await import('./schema.ts');
    const ruleSet = await loadRuleSetOrThrow();
    for (const kind of statementBreakKinds) {
      const facts = [...ruleSet.catalog.facts.values()].filter((f) => f.kind === 'statement' && f.def.break_kind === kind).map((f) => f.id);
      expect(facts, kind).toHaveLength(1);
      expect(
        ruleSet.rules.filter((r) => r.enabled && r.facts.includes(facts[0]!)),
        kind,
      ).toHaveLength(1);
    }
  });

  test('the entities match what the simulator scenarios expect', async () => {
    const { scenarios } = await import('../simulator/scenarios.ts');
    const ruleSet = await loadRuleSetOrThrow();
    for (const s of scenarios) expect(ruleSet.rules.find((r) => r.id === s.ruleId)?.entity, s.name).toBe(s.entityType);
  });
});

describe('factsRead: the facts rules need, through derived facts', () => {
  test('the shipped rules read a binomial test and a ratio, and through them their inputs; dashboard-only features are left out', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const read = factsRead(
      ruleSet.catalog,
      ruleSet.rules.flatMap((r) => r.facts),
    );
    // device_failure_spike reads the channel ratio, not the channel rate it is computed from.
    expect(ruleSet.rules.find((r) => r.id === 'device_failure_spike')!.facts).not.toContain('channel_technical_failure_rate_15m');
    for (const input of [
      'device_attempts_15m',
      'device_technical_failures_15m',
      'channel_technical_failure_rate_baseline',
      'channel_technical_failure_rate_15m',
    ])
      expect(read).toContain(input);
    for (const unused of ['merchant_succeeded_amount_1h', 'device_technical_failure_rate_15m', 'user_attempts_1m', 'channel_attempts_15m'])
      expect(read).not.toContain(unused);
  });

  test('an unknown id is kept; a derived fact of a derived fact is followed', () => {
    const cat = {
      source: {},
      facts: new Map([
        ['a', { kind: 'derived', id: 'a', entity: 'device', def: { kind: 'ratio', numerator: 'b', denominator: 'c' } }],
        ['b', { kind: 'derived', id: 'b', entity: 'device', def: { kind: 'binomial', successes: 'd', trials: 'e', baseline: 'f' } }],
      ]),
    } as unknown as FactCatalog;
    expect([...factsRead(cat, ['a', 'zz'])].sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'zz']);
  });
});

describe('rule versions', () => {
  const versionOf = (rule: unknown, cat = catalog) => {
    const result = parseRuleSet([source(rule)], cat);
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    return result.ruleSet.rules[0]!.version;
  };

  test('ignore formatting and key order, change with a threshold', () => {
    const rule = probing();
    const reordered = Object.fromEntries(Object.entries(rule).reverse());
    expect(parseRuleSet([{ file: 'rules/definitions/ip_amount_probing.json', text: JSON.stringify(reordered) }], catalog)).toMatchObject({ ok: true });
    expect(versionOf(reordered)).toBe(versionOf(rule));
    const stricter = probing();
    (stricter.conditions as { all: { value: unknown }[] }).all[0]!.value = 20;
    expect(versionOf(stricter)).not.toBe(versionOf(rule));
  });

  test('change when the definition of a feature the rule reads changes', () => {
    const edited = JSON.parse(featuresText) as { features: { id: string; window: string }[] };
    edited.features.find((f) => f.id === 'ip_attempts_10m')!.window = '15m';
    const other = parseFeatureCatalog('features.json', JSON.stringify(edited));
    if (!other.ok) throw new Error('edited catalog invalid');
    expect(versionOf(probing(), other.catalog)).not.toBe(versionOf(probing()));
    expect(versionOf(definition('risk_review'), other.catalog)).toBe(versionOf(definition('risk_review')));
  });
});

type Mistake = { name: string; break: (rule: Record<string, unknown>) => unknown; path: string; message: RegExp };
const firstCondition = (rule: Record<string, unknown>) => (rule.conditions as { all: Record<string, unknown>[] }).all[0]!;

const mistakes: Mistake[] = [
  {
    name: 'missing field',
    break: (r) => {
      delete r.cooldown;
      return r;
    },
    path: '$',
    message: /missing required field "cooldown".*e\.g\. 30m/,
  },
  {
    name: 'misspelled field',
    break: (r) => {
      r.sevrity = r.severity;
      delete r.severity;
      return r;
    },
    path: '$.sevrity',
    message: /unknown field "sevrity". Did you mean "severity"\?/,
  },
  {
    name: 'severity outside the list',
    break: (r) => ({ ...r, severity: 'urgent' }),
    path: '$.severity',
    message: /must be one of "low", "medium", "high", "critical"/,
  },
  {
    name: 'misspelled entity',
    break: (r) => ({ ...r, entity: 'ipp' }),
    path: '$.entity',
    message: /"ipp" is not allowed; must be one of .* Did you mean "ip"\?/,
  },
  {
    name: 'condition priority 0',
    break: (r) => {
      firstCondition(r).priority = 0;
      return r;
    },
    path: '$.conditions.all[0].priority',
    message: /integer >= 1/,
  },
  {
    name: 'condition params not an object',
    break: (r) => {
      firstCondition(r).params = 5;
      return r;
    },
    path: '$.conditions.all[0].params',
    message: /"params" is an object/,
  },
  {
    name: 'fact reference with an unknown key',
    break: (r) => {
      firstCondition(r).value = { fact: 'ip_distinct_amounts_10m', factor: 2 };
      return r;
    },
    path: '$.conditions.all[0].value.factor',
    message: /takes fact, path and params/,
  },
  { name: 'unknown action', break: (r) => ({ ...r, action: 'email' }), path: '$.action', message: /must be one of "notify_support"/ },
  { name: 'cooldown in words', break: (r) => ({ ...r, cooldown: '30 minutes' }), path: '$.cooldown', message: /not a duration.*"30m", "2h", "1d"/ },
  { name: 'zero cooldown', break: (r) => ({ ...r, cooldown: '0m' }), path: '$.cooldown', message: /not a duration/ },
  { name: 'cooldown of months', break: (r) => ({ ...r, cooldown: '90d' }), path: '$.cooldown', message: /longer than 30 days/ },
  {
    name: 'misspelled fact',
    break: (r) => {
      firstCondition(r).fact = 'ip_atempts_10m';
      return r;
    },
    path: '$.conditions.all[0].fact',
    message: /unknown fact "ip_atempts_10m". Did you mean "ip_attempts_10m"\?.*features\.json/,
  },
  {
    name: "another entity's fact",
    break: (r) => {
      firstCondition(r).fact = 'device_technical_failures_15m';
      return r;
    },
    path: '$.conditions.all[0].fact',
    message: /kept per device, but this rule is about ip/,
  },
  {
    name: 'unknown operator',
    break: (r) => {
      firstCondition(r).operator = 'greaterThen';
      return r;
    },
    path: '$.conditions.all[0].operator',
    message: /unknown operator "greaterThen". Did you mean "greaterThan"\?/,
  },
  {
    name: 'unknown decorator',
    break: (r) => {
      firstCondition(r).operator = 'never:equal';
      return r;
    },
    path: '$.conditions.all[0].operator',
    message: /unknown operator "never:equal"/,
  },
  {
    name: 'number compared with a string',
    break: (r) => {
      firstCondition(r).value = '15';
      return r;
    },
    path: '$.conditions.all[0].value',
    message: /needs a number, e.g. 10; got "15"/,
  },
  {
    name: 'olderThan without a unit',
    break: (r) => {
      firstCondition(r).operator = 'olderThan';
      firstCondition(r).value = 30;
      return r;
    },
    path: '$.conditions.all[0].value',
    message: /needs a duration such as "30m"/,
  },
  {
    name: 'value referencing an unknown fact',
    break: (r) => {
      firstCondition(r).value = { fact: 'nope' };
      return r;
    },
    path: '$.conditions.all[0].value.fact',
    message: /unknown fact "nope"/,
  },
  {
    name: 'condition without a value',
    break: (r) => {
      delete firstCondition(r).value;
      return r;
    },
    path: '$.conditions.all[0]',
    message: /missing "value"/,
  },
  {
    name: 'unknown key in a condition',
    break: (r) => {
      firstCondition(r).operater = 'equal';
      return r;
    },
    path: '$.conditions.all[0].operater',
    message: /unknown key "operater". Did you mean "operator"\?/,
  },
  {
    name: 'top level is a bare condition',
    break: (r) => ({ ...r, conditions: firstCondition(r) }),
    path: '$.conditions',
    message: /must start with "all", "any" or "not"/,
  },
  { name: 'empty all', break: (r) => ({ ...r, conditions: { all: [] } }), path: '$.conditions.all', message: /non-empty array/ },
  {
    name: 'not given an array',
    break: (r) => ({ ...r, conditions: { not: [firstCondition(r)] } }),
    path: '$.conditions.not',
    message: /takes one condition, not an array/,
  },
  {
    name: 'shared condition reference',
    break: (r) => ({ ...r, conditions: { all: [{ condition: 'shared' }] } }),
    path: '$.conditions.all[0].condition',
    message: /not supported/,
  },
  {
    name: 'misspelled placeholder',
    break: (r) => ({ ...r, recommended_action: 'Block {entity_id}: {ip_atempts_10m} attempts.' }),
    path: '$.recommended_action',
    message: /placeholder \{ip_atempts_10m\}: unknown fact.*Did you mean "ip_attempts_10m"/,
  },
  {
    name: 'malformed placeholder',
    break: (r) => ({ ...r, recommended_action: 'Block {ip attempts}.' }),
    path: '$.recommended_action',
    message: /placeholder \{ip attempts\}: not a placeholder/,
  },
  {
    name: 'unknown placeholder format',
    break: (r) => ({ ...r, recommended_action: 'Rate {ip_failure_rate_10m|percentage}.' }),
    path: '$.recommended_action',
    message: /unknown format "percentage"/,
  },
  { name: 'id that is not the file name', break: (r) => ({ ...r, id: 'ip_probing' }), path: '$.id', message: /rename the file to ip_probing\.json/ },
  { name: 'id with capitals', break: (r) => ({ ...r, id: 'IpProbing' }), path: '$.id', message: /must match pattern/ },
  { name: 'not an object', break: () => [1, 2], path: '$', message: /one JSON object/ },
];

describe('validation names the file, the JSON path and the fix', () => {
  test.each(mistakes)('$name', (m) => {
    const problems = problemsOf([source(m.break(probing()), 'my-rules/ip_amount_probing.json')]);
    const match = problems.find((p) => p.path === m.path && m.message.test(p.message));
    expect(match, problems.map(formatProblem).join('\n')).toBeDefined();
    expect(match!.file).toBe('my-rules/ip_amount_probing.json');
    expect(formatProblem(match!)).toMatch(/^my-rules\/ip_amount_probing\.json at \$/);
  });

  test('invalid JSON says so', () => {
    const [p] = problemsOf([{ file: 'r/x.json', text: '{ "id": "x", }' }]);
    expect(p).toMatchObject({ file: 'r/x.json', path: '$' });
    expect(p!.message).toMatch(/not valid JSON.*missing comma, quote or bracket/);
  });

  test('object facts need a path or significantlyAbove, and significantlyAbove needs one', () => {
    const spike = definition('device_failure_spike');
    const cond = firstCondition(spike);
    cond.operator = 'lessThan';
    cond.value = 0.001;
    expect(problemsOf([source(spike)])[0]).toMatchObject({
      path: '$.conditions.all[0].fact',
      message: expect.stringMatching(/add a path such as "\$.p_value"/),
    });
    cond.path = '$.p_value';
    expect(parseRuleSet([source(spike)], catalog).ok).toBe(true);
    const wrong = probing();
    firstCondition(wrong).operator = 'significantlyAbove';
    firstCondition(wrong).value = { alpha: 0.01, min_trials: 10 };
    expect(problemsOf([source(wrong)])[0]!.message).toMatch(/binomial derived fact/);
    const noMin = definition('device_failure_spike');
    firstCondition(noMin).value = { alpha: 0.001 };
    expect(problemsOf([source(noMin)])[0]).toMatchObject({ path: '$.conditions.all[0].value', message: expect.stringMatching(/min_trials/) });
  });

  test('decorated operators are accepted', () => {
    const rule = probing();
    firstCondition(rule).operator = 'not:lessThan';
    expect(parseRuleSet([source(rule)], catalog).ok).toBe(true);
  });

  test('duplicate ids across folders name both files', () => {
    const problems = problemsOf([source(definition('risk_review'), 'a/risk_review.json'), source(definition('risk_review'), 'b/risk_review.json')]);
    expect(problems).toEqual([
      { file: 'b/risk_review.json', path: '$.id', message: expect.stringMatching(/duplicate rule id "risk_review", also used by a\/risk_review\.json/) },
    ]);
  });

  test('every problem is reported at once, not just the first', () => {
    const rule = probing();
    rule.severity = 'urgent';
    firstCondition(rule).fact = 'nope';
    const problems = problemsOf([source(rule), source({ ...definition('risk_review'), cooldown: '1 day' })]);
    expect(problems.map((p) => p.path).sort()).toEqual(['$.conditions.all[0].fact', '$.cooldown', '$.severity']);
  });

  test('loadRuleSet reports a missing folder as a problem, loadRuleSetOrThrow as CONFIG_INVALID', async () => {
    const result = await loadRuleSet({ rulesPath: 'no/such/folder' });
    expect(result).toMatchObject({ ok: false, problems: [{ file: 'no/such/folder', path: '$' }] });
    await expect(loadRuleSetOrThrow({ rulesPath: 'no/such/folder' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('feature catalog validation', () => {
  const catalogWith = (
    edit: (c: { features: Record<string, unknown>[]; baselines: Record<string, unknown>[]; derived: Record<string, unknown>[] }) => void,
  ) => {
    const c = JSON.parse(featuresText);
    edit(c);
    const result = parseFeatureCatalog('rules/features.json', JSON.stringify(c));
    if (result.ok) throw new Error('expected problems');
    return result.problems;
  };

  test.each([
    {
      name: 'count with a field',
      edit: (c: any) => {
        c.features[0].aggregation = 'count';
      },
      path: '$.features[0].field',
      message: /use "distinct_count"/,
    },
    {
      name: 'rate without numerator',
      edit: (c: any) => {
        delete c.features[4].numerator;
      },
      path: '$.features[4].numerator',
      message: /aggregation "rate" needs "numerator"/,
    },
    {
      name: 'sum of a text field',
      edit: (c: any) => {
        c.features[0].aggregation = 'sum';
        c.features[0].field = 'ip';
      },
      path: '$.features[0].field',
      message: /sum needs one numeric field/,
    },
    {
      name: 'the event time as a field (the window is over it)',
      edit: (c: any) => {
        c.features[0].aggregation = 'distinct_count';
        c.features[0].field = 'occurred_at';
      },
      path: '$.features[0].field',
      message: /must be one of "event_id", "type", .*"source"/,
    },
    {
      name: 'window not offered',
      edit: (c: any) => {
        c.features[0].window = '7m';
      },
      path: '$.features[0].window',
      message: /must be one of "1m", "10m", "15m", "1h", "24h"/,
    },
    {
      name: 'duplicate fact id',
      edit: (c: any) => {
        c.features[1].id = c.features[0].id;
      },
      path: '$.features[1].id',
      message: /duplicate fact id "ip_attempts_10m"/,
    },
    {
      name: 'derived input unknown',
      edit: (c: any) => {
        c.derived[0].trials = 'device_attempts';
      },
      path: '$.derived[0].trials',
      message: /not a feature or baseline.*Did you mean "device_attempts_15m"/,
    },
    {
      name: 'derived input of another entity',
      edit: (c: any) => {
        c.derived[0].trials = 'ip_attempts_10m';
      },
      path: '$.derived[0].trials',
      message: /kept per ip/,
    },
    {
      name: 'baseline rate above 1',
      edit: (c: any) => {
        c.baselines[0].default = 10;
      },
      path: '$.baselines[0].default',
      message: /between 0 and 1/,
    },
    {
      name: 'status value misspelt',
      edit: (c: any) => {
        c.features[4].numerator.status = ['succeded'];
      },
      path: '$.features[4].numerator.status[0]',
      message: /processing.*succeeded.*failed.*timeout/,
    },
  ])('$name', ({ edit, path, message }) => {
    const problems = catalogWith(edit);
    expect(
      problems.find((p) => p.path === path && message.test(p.message)),
      problems.map(formatProblem).join('\n'),
    ).toBeDefined();
  });
});

describe('generated JSON Schemas', () => {
  test('match rules/schema.ts (run "npx tsx rules/generate-schema.ts" after changing it)', async () => {
    const { schemaFiles } = await import('./schema.ts');
    for (const [name, schema] of Object.entries(schemaFiles)) {
      expect(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8'), name).toBe(JSON.stringify(schema, null, 2) + '\n');
    }
  });
});
