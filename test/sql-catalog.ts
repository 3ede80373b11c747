import {
  dimensions,
  earliestPaymentQuery,
  hourSumsQuery,
  insertRollupQuery,
  insertRatesQuery,
  lastRunQuery,
  ratesQuery,
  recentRunsQuery,
  storedRatesQuery,
} from '../analytics/queries.ts';
import {
  changedOrdersSql,
  insertBucketRatesQuery,
  insertItemsQuery,
  ordersInRangeSql,
  readCursorQuery,
  serverNowQuery,
  writeCursorQuery,
  writtenRatesQuery,
  touchedSinceQuery,
  changesPerSecondQuery,
  historyPerStepQuery,
} from '../analytics/rate-items.ts';
import {
  channelHoursQuery,
  latestPolicyQuery,
  policyRowsQuery,
  previousPolicyQuery,
  retryDelaysQuery,
  retryTransitionsQuery,
} from '../analytics/retry-policy-queries.ts';
import {
  callbackDelayCountsQuery,
  callbackDelayRows,
  callbackDelaysQuery,
  changedOrdersOfRecordsSql,
  dropRecordDayQuery,
  insertCallbackDelaysQuery,
  insertChangedRecordsQuery,
  insertReconciledAttemptsQuery,
  latestReconcileVersionQuery,
  reconcileAttemptsQuery,
  recordDaysQuery,
} from '../analytics/reconcile-queries.ts';
import { baselineRowsQuery, insertBaselinesQuery, latestBaselinesQuery } from '../analytics/baselines.ts';
import { casesOpenedByRuleQuery } from '../analytics/daily-report.ts';
import { dashboardQueries } from '../dashboards/build.ts';
import { recordedCasesQuery } from '../detection/backtest.ts';
import { expandMacros } from '../dashboards/macros.ts';
import { LOOKUP_IDS_STRUCTURE, LOOKUP_IDS_TABLE, dedupLookupQuery, eventColumnsQuery } from '../ingest/writer.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { caseQueries, type InboxFilter } from '../cases/index.ts';
import { automationQueries } from '../automation/index.ts';
import { orderReportsQuery } from '../console/orders.ts';
import { entityTimelineQuery } from '../console/timeline.ts';
import { sharedEntitiesQuery } from '../console/related.ts';
import { liveQueries } from '../console/live.ts';
import {
  ENTITY_IDS_TABLE,
  contextFeaturesQuery,
  entityEventsQuery,
  entityScreenQuery,
  hotKeysQuery,
  newKeysQuery,
  newRowsQuery,
  positionRange,
  reconciledOrdersQuery,
  screenHaving,
  screenPlan,
  stuckOrdersQuery,
} from '../detection/index.ts';
import { parseFeatureCatalog } from '../rules/catalog.ts';
import { defaultFeaturesPath, defaultRulesPath } from '../rules/load.ts';
import type { Feature } from '../rules/schema.ts';
import { fileByHashQuery, fileLinesQuery } from '../statements/store.ts';
import { inboxSeenQuery } from '../statements/job.ts';
import {
  attemptsQuery,
  breakStatesQuery,
  breaksQuery,
  fileNamesQuery,
  latestRunsQuery,
  nearbyLinesQuery,
  runBreaksQuery,
  periodLinesQuery,
  periodStateQuery,
  refundsQuery,
  summaryBreaksQuery,
  summaryMatchesQuery,
  summaryRunsQuery,
} from '../statements/reconcile-queries.ts';
import { bootstrapStatements, existingColumnsQuery, loadMigrations, migrationLockQueries } from '../storage/migrations.ts';
import { ident, sql } from '../storage/sql.ts';

export interface CatalogStatement {
  name: string;
  sql: string;
  /** An external table the statement reads (sent as data at run time, see storage/http.ts). */
  external?: { name: string; structure: string };
}

/** The migration lock's statements, in the order a take-over and a release run them. */
function lockStatements(database: string): CatalogStatement[] {
  const q = migrationLockQueries(database, "pid-it's");
  const aside = 'migration_lock_stale_0';
  return [
    { name: 'take the migration lock', sql: q.take },
    { name: 'migration lock heartbeat', sql: q.beat },
    { name: 'read the migration lock', sql: q.read() },
    { name: 'set a stale migration lock aside', sql: q.setAside(aside) },
    { name: 'read a lock set aside', sql: q.read(aside) },
    { name: 'put a migration lock back', sql: q.putBack(aside) },
    { name: 'set it aside again', sql: q.setAside(aside) },
    { name: 'drop a stale migration lock', sql: q.dropAside(aside) },
    { name: 'take the migration lock again', sql: q.take },
    { name: 'release the migration lock', sql: q.release },
  ];
}

/**
 * Every statement the project ships, in the order they can run on an empty server: DDL first,
 * then the queries with representative values. Tests run all of them on ClickHouse 18.16 and on
 * a current engine so nothing we send works on only one of them.
 */
export function shippedStatements(database: string): CatalogStatement[] {
  const db = ident(database);
  const events = ident(database, 'payment_events');
  return [
    ...bootstrapStatements(database).map((s, i) => ({ name: `bootstrap #${i + 1}`, sql: s })),
    ...loadMigrations(database).flatMap((m) => m.statements.map((s, i) => ({ name: `${m.name} #${i + 1}`, sql: s }))),
    { name: 'read applied migrations', sql: `SELECT DISTINCT version FROM ${db}.schema_migrations` },
    { name: 'read columns (migrations)', sql: existingColumnsQuery(database, 'case_versions', ['assignee', 'resolution']) },
    {
      name: 'record migration',
      sql: sql`INSERT INTO ${db}.schema_migrations (version, name, applied_at) VALUES (${1}, ${'001_payment_events'}, ${new Date(Date.UTC(2026, 0, 1))})`,
    },
    ...lockStatements(database),
    {
      name: 'dedup look-up',
      sql: dedupLookupQuery(events),
      external: { name: LOOKUP_IDS_TABLE, structure: LOOKUP_IDS_STRUCTURE },
    },
    { name: 'columns of payment_events (insert format)', sql: eventColumnsQuery(events) },
    { name: 'count events', sql: `SELECT count() FROM ${events}` },
    { name: 'count by status', sql: `SELECT type, status, count() AS n FROM ${events} GROUP BY type, status ORDER BY type, status` },
    { name: 'duplicate ids', sql: `SELECT count() FROM (SELECT event_id FROM ${events} GROUP BY event_id HAVING count() > 1)` },
    ...analyticsStatements(database),
    ...dashboardStatements(database),
    ...detectionStatements(database),
    ...retryPolicyStatements(database),
    ...reconcileStatements(database),
    ...baselineStatements(database),
    ...dailyReportStatements(database),
    ...statementStatements(database),
    ...consoleStatements(database),
    ...automationStatements(database),
  ];
}

/** Automation: the cases it takes, the orders' attempts, the commands and their answers, the kill switch. */
function automationStatements(database: string): CatalogStatement[] {
  const q = automationQueries(database);
  const fromSec = Math.floor(Date.UTC(2026, 10, 25) / 1000);
  return [
    { name: 'new automatic cases', sql: q.newCaseIds(['stuck_processing', "it's"], 500) },
    { name: 'attempts of orders', sql: q.attempts(['o-1', "o'2"]) },
    { name: 'commands by id', sql: q.byIds(['K1', "K'2"]) },
    { name: 'commands of cases', sql: q.ofCases(['C1', "C'2"]) },
    { name: 'refunds since', sql: q.refundedSince(fromSec) },
    { name: 'outstanding commands', sql: q.outstanding(2_000) },
    { name: 'command answers', sql: q.answers(['o-1', "o'2"], fromSec) },
    { name: 'automation switch', sql: q.switchState() },
    { name: 'attempts still processing (requery, scan)', sql: q.stillProcessing(fromSec - 360, fromSec - 300, 60, false) },
    { name: 'attempts still processing (requery, whole day)', sql: q.stillProcessing(fromSec - 86_400, fromSec - 300, 60, true) },
    { name: 'attempts re-queried since', sql: q.requeriedSince(fromSec - 300) },
    { name: 'attempts still processing of some orders (requery)', sql: q.stillProcessingOf(['o-1', 'o-2'], fromSec - 86_400, fromSec - 300) },
    { name: 'orders asked about before (requery)', sql: q.askedBefore(fromSec - 86_400, fromSec - 300) },
    { name: 'attempts left waiting (requery)', sql: q.waitingOldest(fromSec - 86_400, 200) },
    { name: 'orders with late reports (requery)', sql: q.lateOrders(fromSec - 120, fromSec - 86_400, fromSec - 600) },
    { name: 'server clock', sql: q.serverNow() },
    { name: 'command counts', sql: q.counts() },
  ];
}

/** The support console: inbox pages (first, filtered, and after a cursor), counts, an entity's cases, an order's story. */
function consoleStatements(database: string): CatalogStatement[] {
  const cases = caseQueries(database);
  return [
    { name: 'inbox candidates', sql: cases.inboxCandidates({ limit: 50 }, 204) },
    { name: 'inbox among candidates', sql: cases.inboxCurrent({ limit: 50 }, ['C1', "C'2"]) },
    { name: 'inbox over every case', sql: cases.inboxCurrent({ limit: 50, notAssignee: 'automation' }) },
    ...(['inboxCandidates', 'inboxCurrent'] as const).map((kind) => ({
      name: `inbox ${kind} filtered, next page`,
      sql: (kind === 'inboxCandidates' ? (f: InboxFilter) => cases.inboxCandidates(f, 84) : (f: InboxFilter) => cases.inboxCurrent(f, ['C1']))({
        status: 'open',
        severity: 'high',
        rule: "it's",
        entityType: 'order',
        entityId: 'o\\1',
        assignee: '',
        q: '<img src=x>',
        openedFromMs: Date.UTC(2026, 10, 18, 10),
        openedBeforeMs: Date.UTC(2026, 10, 25, 9),
        limit: 20,
        after: { rank: 1, openedAt: '2026-11-25 10:00:00', caseId: "C'1" },
      }),
    })),
    { name: 'case counts by status', sql: cases.countsByStatus() },
    { name: 'rule stats and precision', sql: cases.ruleStats(Date.UTC(2026, 10, 25, 11)) },
    { name: 'ids of the cases of entities', sql: cases.idsOfEntities('order', ['o-1', "o'2"]) },
    { name: 'live feed', sql: liveQueries(database).since(1764000000000) },
    {
      name: 'live feed check against case_state',
      sql: liveQueries(database).held([
        { case_id: "C'1", version: '1764000000000', status: 'open', severity: 'high', entity_type: 'ip', entity_id: '"><x>' },
        { case_id: 'C2', version: '1764000000001', status: 'open', severity: 'low', entity_type: 'order', entity_id: 'o-1' },
      ]),
    },
    { name: 'order story (by order or transaction id)', sql: orderReportsQuery(database, '"><script>x</script>') },
    ...['ip', 'device', 'user', 'order', 'merchant'].map((entity) => ({
      name: `${entity} timeline`,
      sql: entityTimelineQuery(database, entity, "it's", Date.UTC(2026, 10, 25, 11))!,
    })),
    ...['ip', 'device', 'user', 'order', 'merchant'].map((entity) => ({
      name: `IPs, devices and users seen with an ${entity}`,
      sql: sharedEntitiesQuery(database, entity, "it's", Date.UTC(2026, 10, 25, 10), Date.UTC(2026, 10, 25, 11))!,
    })),
  ];
}

/** The rates job and `paysentinel analytics`: every dimension, bucketed and whole-window, written and read back. */
function analyticsStatements(database: string): CatalogStatement[] {
  const fromMs = Date.UTC(2026, 10, 25, 10, 0, 0, 250);
  const toMs = Date.UTC(2026, 10, 25, 11);
  return [
    ...dimensions.map((dimension) => ({ name: `rates by ${dimension}`, sql: ratesQuery(database, { fromMs, toMs, dimension }) })),
    { name: 'rates by 5m', sql: ratesQuery(database, { fromMs, toMs, dimension: 'all', bucket: '5m' }) },
    ...dimensions.map((dimension) => ({
      name: `write hourly rates by ${dimension}`,
      sql: insertRatesQuery(database, { fromMs, toMs, dimension, bucket: 'hour', computedAt: new Date(toMs), version: 1 }),
    })),
    {
      name: 'write hour rates from 5-minute buckets',
      sql: insertRollupQuery(database, { bucket: 'hour', startMs: Date.UTC(2026, 10, 25, 10), computedAt: new Date(toMs), version: 2 }),
    },
    {
      name: 'write day rates from hours',
      sql: insertRollupQuery(database, { bucket: 'day', startMs: Date.UTC(2026, 10, 25), computedAt: new Date(toMs), version: 3 }),
    },
    ...dimensions.map((dimension) => ({
      name: `stored hours summed by ${dimension}`,
      sql: hourSumsQuery(database, { fromMs: Date.UTC(2026, 10, 24), toMs: Date.UTC(2026, 10, 25), dimension }),
    })),
    { name: 'read stored rates', sql: storedRatesQuery(database, { fromMs, toMs, dimension: 'channel', bucket: 'day' }) },
    { name: 'count written rates', sql: writtenRatesQuery(database, 1, fromMs, toMs) },
    {
      name: 'rate items of changed orders',
      sql: insertItemsQuery(database, { orders: changedOrdersSql(database, Math.floor(fromMs / 1000), Math.floor(toMs / 1000)), version: 4 }),
    },
    { name: 'rate items of an hour', sql: insertItemsQuery(database, { orders: ordersInRangeSql(database, fromMs, toMs), version: 5 }) },
    { name: 'rate items after a window', sql: insertItemsQuery(database, { orders: ordersInRangeSql(database, toMs, null), version: 6 }) },
    { name: 'touched buckets since a version', sql: touchedSinceQuery(database, 3, 9) },
    {
      name: 'rate items of changes without an upper bound',
      sql: insertItemsQuery(database, { orders: changedOrdersSql(database, Math.floor(fromMs / 1000), null), version: 8 }),
    },
    { name: 'changes per second', sql: changesPerSecondQuery(database, Math.floor(fromMs / 1000), Math.floor(toMs / 1000)) },
    { name: 'changes per second, open-ended', sql: changesPerSecondQuery(database, Math.floor(fromMs / 1000), null) },
    { name: 'history per 10 s', sql: historyPerStepQuery(database, fromMs, toMs) },
    { name: 'history per 10 s, open-ended', sql: historyPerStepQuery(database, fromMs, null) },
    {
      name: 'write 5m rates from items',
      sql: insertBucketRatesQuery(database, {
        fromMs: Date.UTC(2026, 10, 25, 10),
        toMs,
        buckets: [Date.UTC(2026, 10, 25, 10) / 1000, Date.UTC(2026, 10, 25, 10, 35) / 1000],
        computedAt: new Date(toMs),
        version: 7,
      }),
    },
    { name: 'server clock', sql: serverNowQuery },
    {
      name: 'write rates cursor',
      sql: writeCursorQuery(database, "it's", {
        seenToSec: Math.floor(toMs / 1000),
        coveredFromSec: Math.floor(fromMs / 1000),
        historyFromSec: Math.floor(fromMs / 1000) - 86_400,
        writtenVersion: 3,
        serverAtSec: Math.floor(toMs / 1000),
        serverUptime: 3_600,
        version: 1,
      }),
    },
    { name: 'read rates cursor', sql: readCursorQuery(database, "it's") },
    { name: 'earliest payment', sql: earliestPaymentQuery(database) },
    { name: 'last job run', sql: lastRunQuery(database, 'rates') },
    { name: 'recent job runs', sql: recentRunsQuery(database, "it's", 20) },
  ];
}

/**
 * Every Grafana panel and variable query, macros expanded as the plugin would for one hour, with
 * the variables at All and, once more, with a value picked (quotes included).
 */
function dashboardStatements(database: string): CatalogStatement[] {
  const range = { from: new Date(Date.UTC(2026, 10, 25, 10)), to: new Date(Date.UTC(2026, 10, 25, 11)), intervalSeconds: 60 };
  return dashboardQueries(database).flatMap((q) => [
    { name: `dashboard ${q.name}`, sql: expandMacros(q.sql, { ...range, variables: q.variables }) },
    ...(q.variables.length === 0
      ? []
      : [
          {
            name: `dashboard ${q.name} (picked)`,
            sql: expandMacros(q.sql, { ...range, variables: q.variables, selected: Object.fromEntries(q.variables.map((v) => [v.name, ["it's", 'm1']])) }),
          },
        ]),
  ]);
}

/** What live detection and the case store send. */
function detectionStatements(database: string): CatalogStatement[] {
  const nowSec = Math.floor(Date.UTC(2026, 10, 25, 11) / 1000);
  const parsed = parseFeatureCatalog(defaultFeaturesPath, readFileSync(defaultFeaturesPath, 'utf8'));
  if (!parsed.ok) throw new Error('rules/features.json is invalid: run "paysentinel rules validate"');
  const features = [...parsed.catalog.facts.values()].filter((f) => f.kind === 'feature').map((f) => f.def as Feature);
  const cases = caseQueries(database);
  // The bundled rules' conditions (plain JSON; the screen's HAVING reads only entity and conditions).
  const rules = readdirSync(defaultRulesPath)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(defaultRulesPath, f), 'utf8')) as { entity: string; conditions: unknown });
  return [
    { name: 'new rows (first tick)', sql: newRowsQuery(database, nowSec - 600, new Map(), undefined, nowSec - 86_400) },
    {
      name: 'new rows',
      sql: newRowsQuery(
        database,
        nowSec - 120,
        new Map([
          [0, 41],
          [3, 7],
        ]),
      ),
    },
    {
      name: 'new keys',
      sql: newKeysQuery(
        database,
        nowSec - 120,
        positionRange(
          new Map([[0, 41]]),
          new Map([
            [0, 90],
            [3, 7],
          ]),
        ),
      ),
    },
    { name: 'new rows (backtest)', sql: newRowsQuery(database, nowSec - 120, new Map([[0, 41]]), nowSec) },
    { name: 'stuck orders (first scan)', sql: stuckOrdersQuery(database, nowSec - 86_400, [[nowSec - 86_400, nowSec - 1_800]]) },
    {
      name: 'stuck orders',
      sql: stuckOrdersQuery(database, nowSec - 86_400, [
        [nowSec - 1_810, nowSec - 1_800],
        [nowSec - 2_710, nowSec - 2_700],
      ]),
    },
    { name: 'reconciled orders', sql: reconciledOrdersQuery(database) },
    { name: 'reconciled orders (backtest)', sql: reconciledOrdersQuery(database, nowSec * 1000) },
    { name: 'stuck orders (backtest)', sql: stuckOrdersQuery(database, nowSec - 86_400, [[nowSec - 1_810, nowSec - 1_800]], nowSec) },
    ...(['ip', 'device', 'user', 'order'] as const).flatMap((entity) => {
      const plan = screenPlan(features.filter((f) => f.entity === entity));
      const having = screenHaving(
        rules.filter((r) => r.entity === entity),
        plan,
        nowSec * 1000,
      );
      return [
        {
          name: `${entity} events`,
          sql: entityEventsQuery(database, entity, nowSec - 900),
          external: { name: ENTITY_IDS_TABLE, structure: 'id String' },
        },
        {
          name: `${entity} events (backtest)`,
          sql: entityEventsQuery(database, entity, nowSec - 900, nowSec),
          external: { name: ENTITY_IDS_TABLE, structure: 'id String' },
        },
        {
          name: `${entity} screen`,
          sql: entityScreenQuery(
            database,
            entity,
            plan,
            nowSec * 1000,
            nowSec - 120,
            positionRange(
              new Map([[0, 41]]),
              new Map([
                [0, 90],
                [3, 7],
              ]),
            ),
            undefined,
            having,
          ),
        },
        {
          name: `${entity} screen by id`,
          sql: entityScreenQuery(
            database,
            entity,
            plan,
            nowSec * 1000,
            nowSec - 120,
            positionRange(new Map([[0, 41]]), new Map([[0, 90]])),
            undefined,
            having,
            900_000,
            'ids',
          ),
          external: { name: ENTITY_IDS_TABLE, structure: 'id String' },
        },
        { name: `${entity} near volume floor`, sql: hotKeysQuery(database, entity, nowSec - 600, 8, { type: ['payment'], failure_code: ['timeout'] }) },
        {
          name: `${entity} screen (backtest)`,
          sql: entityScreenQuery(database, entity, plan, nowSec * 1000, nowSec - 120, positionRange(new Map(), new Map([[0, 90]])), nowSec),
        },
      ];
    }),
    ...(['channel', 'merchant'] as const).flatMap((entity) => {
      const query = contextFeaturesQuery(
        database,
        entity,
        features.filter((f) => f.entity === entity),
        nowSec,
      );
      const backtest = contextFeaturesQuery(
        database,
        entity,
        features.filter((f) => f.entity === entity),
        nowSec,
        nowSec,
      );
      return query && backtest
        ? [
            { name: `${entity} features`, sql: query },
            { name: `${entity} features (backtest)`, sql: backtest },
          ]
        : [];
    }),
    {
      name: 'latest cases',
      sql: cases.latestIdsFor([
        ["it's", 'ip', '1.2.3.4'],
        ['duplicate_charge', 'order', 'o\\1'],
      ]),
    },
    { name: 'case by id', sql: cases.byId("C'1") },
    { name: 'held cases by id', sql: cases.byIds(["C'1", 'C2']) },
    { name: 'cases as of (backtest)', sql: cases.asOf(nowSec * 1000) },
    { name: 'recorded cases (backtest)', sql: recordedCasesQuery(database, nowSec * 1000 - 3_600_000, nowSec * 1000) },
    { name: 'list cases', sql: cases.list({ status: 'open', rule: 'ip_amount_probing', sinceMs: nowSec * 1000, limit: 50 }) },
    { name: 'case history', sql: cases.history('C1') },
    { name: 'unresolved cases of rules', sql: cases.unresolvedOf(['stuck_processing', "o'rule"], 5_000) },
  ];
}

/** The retry-policy job and `paysentinel policy`: the evidence queries and the policy read back. */
function retryPolicyStatements(database: string): CatalogStatement[] {
  const window = { from: new Date(Date.UTC(2026, 10, 11)), to: new Date(Date.UTC(2026, 10, 25, 10)) };
  return [
    { name: 'retry transitions', sql: retryTransitionsQuery(database, window) },
    { name: 'retry delays', sql: retryDelaysQuery(database, window) },
    { name: 'channel hours', sql: channelHoursQuery(database, window) },
    { name: 'latest retry policy', sql: latestPolicyQuery(database) },
    { name: 'previous retry policy', sql: previousPolicyQuery(database) },
    { name: 'count written policy', sql: policyRowsQuery(database, 1) },
  ];
}

/** The reconcile job: its records, the report's writes and what readers select. */
function reconcileStatements(database: string): CatalogStatement[] {
  const write = {
    fromMs: Date.UTC(2026, 10, 24, 10),
    toMs: Date.UTC(2026, 10, 25, 10, 0, 0, 500),
    generation: 7,
    version: 1,
    computedAt: new Date(Date.UTC(2026, 10, 25, 10)),
    stuckAfterMs: 900_000,
  };
  const records = { generation: 7, version: 2, coveredFromMs: write.fromMs };
  const delays = callbackDelayRows([
    { channel: 'card', delayMs: 1200, n: 3 },
    { channel: 'alipay', delayMs: 800, n: 1 },
  ]);
  return [
    {
      name: 'reconcile records rebuilt from a slice of time',
      sql: insertChangedRecordsQuery(database, { ...records, orders: ordersInRangeSql(database, write.fromMs, write.fromMs + 600_000) }),
    },
    {
      name: 'reconcile records of changed orders',
      sql: insertChangedRecordsQuery(database, {
        ...records,
        orders: changedOrdersOfRecordsSql(database, Math.floor(write.toMs / 1000) - 300, Math.floor(write.toMs / 1000) + 1, records.coveredFromMs),
      }),
    },
    { name: 'reconcile stuck and changed attempts', sql: insertReconciledAttemptsQuery(database, write) },
    { name: 'reconcile callback delay counts', sql: callbackDelayCountsQuery(database, 7, write) },
    { name: 'reconcile callback delays', sql: insertCallbackDelaysQuery(database, write, delays) },
    { name: 'reconcile record days', sql: recordDaysQuery(database) },
    { name: 'drop a day of reconcile records', sql: dropRecordDayQuery(database, '20261101') },
    { name: 'latest reconcile version', sql: latestReconcileVersionQuery(database) },
    { name: 'reconciled attempts', sql: reconcileAttemptsQuery(database, 1) },
    { name: 'callback delays', sql: callbackDelaysQuery(database, 1) },
  ];
}

/** The baselines job and what the rule engine reads. */
function baselineStatements(database: string): CatalogStatement[] {
  const toMs = Date.UTC(2026, 10, 25, 10);
  return [
    {
      name: 'write failure baselines',
      sql: insertBaselinesQuery(database, { fromMs: toMs - 7 * 86_400_000, toMs, minDecided: 100, version: 1, computedAt: new Date(toMs) }),
    },
    { name: 'count written baselines', sql: baselineRowsQuery(database, 1) },
    { name: 'latest baselines', sql: latestBaselinesQuery(database) },
    { name: 'latest channel baselines for an hour', sql: latestBaselinesQuery(database, { entityType: "it's", hours: [10, 255] }) },
  ];
}

/** The daily report (it also sums stored hours, see analyticsStatements): cases opened by rule. */
function dailyReportStatements(database: string): CatalogStatement[] {
  return [{ name: 'cases opened by rule', sql: casesOpenedByRuleQuery(database, Date.UTC(2026, 10, 24), Date.UTC(2026, 10, 25)) }];
}

/** `statements import`, the reconciliation of a period, and `statements breaks|summary`. */
function statementStatements(database: string): CatalogStatement[] {
  const period = { fromMs: Date.UTC(2026, 10, 24, 16), toMs: Date.UTC(2026, 10, 25, 16) };
  const window = { fromMs: period.fromMs - 1_800_000, toMs: period.toMs + 1_800_000 };
  return [
    { name: 'statement file by hash', sql: fileByHashQuery(database, "ab'c\\") },
    { name: 'statement file lines', sql: fileLinesQuery(database, { hash: 'abc', channel: "it's", period }) },
    { name: 'statement period lines', sql: periodLinesQuery(database, { channel: "it's", period }) },
    { name: 'statement attempts', sql: attemptsQuery(database, 'wechat_pay', window) },
    { name: 'statement refunds', sql: refundsQuery(database, 'wechat_pay', window) },
    { name: 'statement lines near the cuts of a period', sql: nearbyLinesQuery(database, { channel: "it's", period }, 1_800_000) },
    { name: 'statement periods to reconcile', sql: periodStateQuery(database, period.fromMs - 7 * 86_400_000) },
    { name: 'statement breaks', sql: breaksQuery(database, { fromMs: period.fromMs, toMs: period.toMs, limit: 1000 }) },
    {
      name: 'statement breaks of a kind and channel',
      sql: breaksQuery(database, { fromMs: period.fromMs, toMs: period.toMs, kind: 'amount_mismatch', channel: "it's", limit: 10 }),
    },
    { name: 'statement summary runs', sql: summaryRunsQuery(database, period.fromMs, period.toMs) },
    { name: 'statement summary breaks', sql: summaryBreaksQuery(database, period.fromMs, period.toMs) },
    { name: 'statement summary matches', sql: summaryMatchesQuery(database, period.fromMs, period.toMs) },
    { name: 'statement inbox files seen', sql: inboxSeenQuery(database, ["in/wechat/it's.csv", 'in/generic/card/b\\c.csv']) },
    { name: 'statement latest runs (break cases)', sql: latestRunsQuery(database, period.fromMs - 31 * 86_400_000) },
    { name: 'statement run breaks (break cases)', sql: runBreaksQuery(database, { channel: "it's", period }, '1764000000000123', 50_001) },
    { name: 'statement file names (break cases)', sql: fileNamesQuery(database, ["ab'c", 'def']) },
    { name: 'break states of periods', sql: breakStatesQuery(database, { periods: [{ channel: "it's", period }] }) },
    {
      name: 'break states of two periods',
      sql: breakStatesQuery(database, {
        periods: [
          { channel: 'a', period },
          { channel: 'b', period: window },
        ],
      }),
    },
    { name: 'break states of orders', sql: breakStatesQuery(database, { orders: ["o'1", 'o2'] }) },
    { name: 'break states of cases', sql: breakStatesQuery(database, { cases: ['C1'] }) },
  ];
}
