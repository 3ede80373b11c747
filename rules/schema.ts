import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { eventFields, eventSources, eventStatuses, eventTypes, type EventField } from '../contract/schema.ts';

/**
 * The formats the risk team edits, each defined once here: the TypeScript types come from
 * these TypeBox schemas, and `rules/generate-schema.ts` writes the JSON Schema files that
 * editors use (`features.schema.json`, `rule.schema.json`, `fixture.schema.json`).
 */

/** What a case can be about. Each entity is keyed by one event field. */
export const entityTypes = ['ip', 'device', 'user', 'merchant', 'order', 'channel'] as const;
export type EntityType = (typeof entityTypes)[number];

/** The event field that identifies each entity. */
export const entityKeyField: Readonly<Record<EntityType, string>> = Object.freeze({
  ip: 'ip',
  device: 'device_id',
  user: 'user_id',
  merchant: 'merchant_id',
  order: 'order_id',
  channel: 'channel',
});

/**
 * Entities whose features a rule may read besides its own: the channel and merchant of the
 * event that triggered the evaluation (e.g. "the channel overall is normal").
 */
export const contextEntities: readonly EntityType[] = ['channel', 'merchant'];

export const windows = ['1m', '10m', '15m', '1h', '24h'] as const;
export type WindowName = (typeof windows)[number];

export const aggregations = ['count', 'distinct_count', 'sum', 'rate', 'followed_by', 'age'] as const;
export type Aggregation = (typeof aggregations)[number];

/** A field a feature may filter, count, sum or group on: any of the contract's but the time, which the window is over. */
export type FeatureField = Exclude<EventField, 'occurred_at'>;
export const featureFields = eventFields.filter((f): f is FeatureField => f !== 'occurred_at');

export const severities = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];

export const actions = ['notify_support', 'manual_review', 'auto_handle', 'log_only'] as const;
export type RuleAction = (typeof actions)[number];

const oneOf = <T extends readonly string[]>(values: T, description: string) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });
const identifier = (description: string) =>
  Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$', description: `${description} Lower-case letters, digits and _, starting with a letter.` });
const text = (description: string) => Type.String({ minLength: 1, maxLength: 2000, description });

const field = oneOf(featureFields, 'An event field of the payment-event contract.');
const values = (description: string) => Type.Array(Type.String({ minLength: 1 }), { minItems: 1, uniqueItems: true, description });
/** Values of a closed list (the contract's enums): a typo is a validation error, not a statement ClickHouse rejects at run time. */
const enumValues = <T extends readonly string[]>(allowed: T, description: string) =>
  Type.Unsafe<string[]>(Type.Array(oneOf(allowed, `one of ${allowed.join(', ')}.`), { minItems: 1, uniqueItems: true, description }));

/** Which events a feature looks at: every listed field must match one of its values. */
export const EventFilterSchema = Type.Object(
  {
    type: Type.Optional(enumValues(eventTypes, 'Event types, e.g. ["payment"].')),
    status: Type.Optional(enumValues(eventStatuses, 'Statuses: processing, succeeded, failed, timeout.')),
    failure_code: Type.Optional(values('Failure codes, e.g. ["risk_blocked"].')),
    source: Type.Optional(enumValues(eventSources, 'Sources: gateway_callback, status_query, reconciliation, client.')),
  },
  { additionalProperties: false, minProperties: 1, description: 'Every listed field must match one of its values.' },
);
export type EventFilter = Static<typeof EventFilterSchema>;

export const FeatureSchema = Type.Object(
  {
    id: identifier('Fact name rules use, e.g. ip_attempts_10m.'),
    description: text('What the number means, for the risk team.'),
    entity: oneOf(entityTypes, 'The entity the feature is kept per.'),
    window: oneOf(windows, 'Sliding event-time window (occurred_at), ending at the evaluation time.'),
    aggregation: oneOf(aggregations, 'count | distinct_count | sum | rate | followed_by | age: see rules/README.md.'),
    field: Type.Optional(
      Type.Union([field, Type.Array(field, { minItems: 1, uniqueItems: true })], {
        description: 'distinct_count/rate/followed_by/age: the key counted (several fields = a composite key); sum: the field summed.',
      }),
    ),
    filter: Type.Optional(EventFilterSchema),
    numerator: Type.Optional(
      Type.Unsafe<EventFilter>({ ...EventFilterSchema, description: 'rate: the share of filtered events (or keys) that also match this.' }),
    ),
    followed_by: Type.Optional(Type.Unsafe<EventFilter>({ ...EventFilterSchema, description: 'followed_by: the later event that completes the sequence.' })),
    latest: Type.Optional(Type.Unsafe<EventFilter>({ ...EventFilterSchema, description: 'age: only keys whose latest event matches this.' })),
    group_by: Type.Optional(
      Type.Union([field, Type.Array(field, { minItems: 1, uniqueItems: true })], {
        description: 'Aggregate per group and keep the largest value (e.g. attempts per order, per user).',
      }),
    ),
  },
  { additionalProperties: false },
);
export type Feature = Static<typeof FeatureSchema>;

/** A value supplied from history (refreshed by analytics), not computed from the window. */
export const BaselineSchema = Type.Object(
  {
    id: identifier('Fact name, e.g. channel_technical_failure_rate_baseline.'),
    description: text('Where the value comes from.'),
    entity: oneOf(entityTypes, 'The entity the baseline is kept per.'),
    unit: oneOf(['rate', 'count', 'amount_minor'] as const, 'rate is 0..1.'),
    default: Type.Number({ description: 'Used when history has no value yet.' }),
  },
  { additionalProperties: false },
);
export type Baseline = Static<typeof BaselineSchema>;

/**
 * The disagreements statement reconciliation finds (issue 16), one fact kind each. Defined here,
 * below both the rules and the statements stage that produces them.
 */
export const statementBreakKinds = [
  'charged_not_recorded',
  'recorded_not_settled',
  'amount_mismatch',
  'currency_mismatch',
  'duplicate_settlement',
  'refund_mismatch',
  'ambiguous',
] as const;
export type StatementBreakKind = (typeof statementBreakKinds)[number];

/**
 * A fact supplied by statement reconciliation, not computed from events: the number of open
 * breaks of one kind on an order (in the latest reconciliation of every statement period).
 * Rules reading these facts are evaluated when breaks are found, never by live detection.
 */
export const StatementFactSchema = Type.Object(
  {
    id: identifier('Fact name, e.g. order_charged_not_recorded.'),
    description: text('What the number means, for the risk team.'),
    entity: oneOf(['order'] as const, 'Breaks are kept per order.'),
    break_kind: oneOf(statementBreakKinds, 'The break kind counted: see the README, statements.'),
  },
  { additionalProperties: false },
);
export type StatementFact = Static<typeof StatementFactSchema>;

export const derivedKinds = ['binomial', 'ratio'] as const;
export type DerivedKind = (typeof derivedKinds)[number];

/**
 * A fact computed from other facts at evaluation time.
 * - `binomial` tests `successes` out of `trials` against the rate `baseline` and yields
 *   { successes, trials, rate, baseline, p_value, z_score } (for `significantlyAbove`).
 * - `ratio` yields `numerator / denominator` (null when the denominator is 0).
 */
export const DerivedSchema = Type.Object(
  {
    id: identifier('Fact name, e.g. device_technical_failure_stats_15m.'),
    description: text('What the value means.'),
    entity: oneOf(entityTypes, 'The entity the derived fact belongs to.'),
    kind: oneOf(derivedKinds, 'binomial | ratio.'),
    successes: Type.Optional(identifier('binomial: fact with the observed count (e.g. failures).')),
    trials: Type.Optional(identifier('binomial: fact with the number of trials (e.g. attempts).')),
    baseline: Type.Optional(identifier('binomial: fact with the expected rate 0..1.')),
    numerator: Type.Optional(identifier('ratio: fact divided.')),
    denominator: Type.Optional(identifier('ratio: fact divided by.')),
  },
  { additionalProperties: false },
);
export type Derived = Static<typeof DerivedSchema>;

export const FeatureCatalogSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    features: Type.Array(FeatureSchema, { description: 'Windowed features computed from events.' }),
    baselines: Type.Array(BaselineSchema, { description: 'Values from history.' }),
    derived: Type.Array(DerivedSchema, { description: 'Statistics computed from other facts.' }),
    statements: Type.Optional(Type.Array(StatementFactSchema, { description: 'Facts from statement reconciliation: open breaks per order and kind.' })),
  },
  {
    $id: 'https://paysentinel.dev/schemas/features.v1.json',
    title: 'paysentinel feature catalog',
    description: 'The facts rules can use: windowed features per entity, baselines from history, derived statistics.',
    additionalProperties: false,
  },
);
export type FeatureCatalog = Static<typeof FeatureCatalogSchema>;

/** A json-rules-engine condition: all / any / not, or fact + operator + value. */
export const ConditionSchema = Type.Recursive(
  (Self) =>
    Type.Union([
      Type.Object(
        { all: Type.Array(Self, { minItems: 1 }), name: Type.Optional(Type.String()), priority: Type.Optional(Type.Integer({ minimum: 1 })) },
        { additionalProperties: false },
      ),
      Type.Object(
        { any: Type.Array(Self, { minItems: 1 }), name: Type.Optional(Type.String()), priority: Type.Optional(Type.Integer({ minimum: 1 })) },
        { additionalProperties: false },
      ),
      Type.Object({ not: Self, name: Type.Optional(Type.String()), priority: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false }),
      Type.Object(
        {
          fact: Type.String({ description: 'A feature, baseline or derived fact from features.json.' }),
          operator: Type.String({ description: 'A json-rules-engine operator (optionally decorated, e.g. not:equal) or a paysentinel one.' }),
          value: Type.Unknown({ description: 'The value to compare with, or { "fact": "other_fact" }.' }),
          path: Type.Optional(Type.String({ pattern: '^\\$', description: 'JSONPath into an object fact, e.g. $.p_value.' })),
          params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          name: Type.Optional(Type.String()),
          priority: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ]),
  { $id: 'Condition' },
);

/** A top-level condition: rules start with all, any or not. */
export type Condition = Static<typeof ConditionSchema>;

export const RuleFileSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    id: identifier('Unique rule id; the file is named <id>.json.'),
    title: Type.String({ minLength: 1, maxLength: 120, description: 'One line shown to support.' }),
    description: text('What the rule detects and why.'),
    severity: oneOf(severities, 'low | medium | high | critical.'),
    enabled: Type.Boolean({ description: 'Disabled rules are validated but never evaluated.' }),
    entity: oneOf(entityTypes, 'What the case is about: ip, device, user, merchant, order or channel.'),
    cooldown: Type.String({
      pattern: '^[1-9][0-9]*(s|m|h|d)$',
      description: 'How long further hits update the same case instead of opening a new one, e.g. 30m, 2h, 1d.',
    }),
    action: oneOf(actions, 'notify_support | manual_review | auto_handle | log_only.'),
    recommended_action: text('Plain-language advice for support; {fact} or {fact.path} placeholders, plus {entity_id} and {entity_type}.'),
    priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'json-rules-engine priority; higher runs first. @default 1' })),
    conditions: ConditionSchema,
  },
  {
    $id: 'https://paysentinel.dev/schemas/rule.v1.json',
    title: 'paysentinel rule',
    description: 'One detection rule: json-rules-engine conditions plus what to do when they hold.',
    additionalProperties: false,
  },
);
export type RuleFile = Static<typeof RuleFileSchema>;

/** Fact values as rules see them: numbers, or objects (derived statistics) read with a path. */
export type FactValue = number | string | boolean | Readonly<Record<string, unknown>> | null;
export type Facts = Readonly<Record<string, FactValue | undefined>>;

export const FixtureCaseSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'What the case shows, e.g. "2 attempts and 2 failures is not a spike".' }),
    entity: oneOf(entityTypes, 'The entity evaluated.'),
    entity_id: Type.String({ minLength: 1 }),
    events: Type.Optional(
      Type.Array(Type.Record(Type.String(), Type.Unknown()), {
        description: 'Payment events (contract v1); the features of the entity, its channel and merchant are computed from them at "now".',
      }),
    ),
    now: Type.Optional(Type.String({ description: 'Evaluation time (RFC 3339) for "events"; windows end here.' })),
    facts: Type.Optional(
      Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Boolean(), Type.Null()]), {
        description: 'Feature and baseline values; they override values computed from events. Derived facts are always computed.',
      }),
    ),
    expect: Type.Array(Type.String(), { uniqueItems: true, description: 'Ids of exactly the rules that must fire; [] for none.' }),
    expect_recommended_action: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Rule id -> text the rendered advice must contain.' })),
  },
  { additionalProperties: false },
);
export type FixtureCase = Static<typeof FixtureCaseSchema>;

export const FixtureFileSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    description: Type.Optional(Type.String()),
    cases: Type.Array(FixtureCaseSchema, { minItems: 1 }),
  },
  {
    $id: 'https://paysentinel.dev/schemas/rule-fixture.v1.json',
    title: 'paysentinel rule test fixture',
    description: 'Facts or events in, expected rule hits out; run with "paysentinel rules test".',
    additionalProperties: false,
  },
);
export type FixtureFile = Static<typeof FixtureFileSchema>;

/** Every schema by output file name, for the generator. */
export const schemaFiles: Readonly<Record<string, TSchema>> = {
  'features.schema.json': FeatureCatalogSchema,
  'rule.schema.json': RuleFileSchema,
  'fixture.schema.json': FixtureFileSchema,
};
