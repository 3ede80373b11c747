export {
  entityTypes,
  entityKeyField,
  contextEntities,
  windows,
  aggregations,
  severities,
  actions,
  FeatureCatalogSchema,
  RuleFileSchema,
  FixtureFileSchema,
  type EntityType,
  type WindowName,
  type Aggregation,
  type Severity,
  type RuleAction,
  type Feature,
  type Baseline,
  type Derived,
  type EventFilter,
  type FeatureCatalog,
  type RuleFile,
  type Condition,
  type FactValue,
  type Facts,
  type StatementFact,
  statementBreakKinds,
  type StatementBreakKind,
} from './schema.ts';
export { parseFeatureCatalog, completeFacts, canRead, type FactCatalog, type FactInfo } from './catalog.ts';
export {
  loadRuleSet,
  loadRuleSetOrThrow,
  loadFeatureCatalog,
  parseRuleSet,
  readRuleSources,
  readMessageSources,
  defaultRulesPath,
  defaultFeaturesPath,
  type RuleSet,
  type LoadedRule,
  type RuleSetResult,
  type RuleSource,
  type LoadRuleSetOptions,
  type FactSource,
} from './load.ts';
export { createRuleEvaluator, anyMayHold, mayHold, mayHoldWithin, type RuleEvaluator, type Hit, type FactBound } from './evaluate.ts';
export { conditionWalker, comparisons, isPlain, type Comparison, type ConditionWalk } from './conditions.ts';
export { parseDuration } from './duration.ts';
export { binomialTail, binomialStats, significantlyAbove, olderThan, customOperators, type BinomialStats } from './operators.ts';
export { computeFeature, computeFacts, timed, matches, fieldsOf, windowMs, type TimedEvent, type FactScope } from './features.ts';
export { renderTemplate, formatDuration, type RenderContext } from './render.ts';
export { formatProblem, type RuleProblem } from './problems.ts';
export {
  MESSAGE_SUFFIX,
  messagePlaceholders,
  parseMessageTemplate,
  renderMessage,
  type MessagePart,
  type MessagePlaceholder,
  type MessageValues,
} from './messages.ts';
export {
  loadFixtures,
  parseFixture,
  runFixtures,
  defaultFixturesPath,
  type Fixture,
  type ResolvedCase,
  type FixtureReport,
  type CaseResult,
} from './fixtures.ts';
