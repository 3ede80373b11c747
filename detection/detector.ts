import { anyMayHold } from '../rules/evaluate.ts';
import { computeFacts, type Hit, type RuleSet } from '../rules/index.ts';
import type { EventFilter } from '../rules/schema.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { addContext, createContext } from './context.ts';
import { EVENT_ENTITIES, type EventEntity } from './entities.ts';
import { createHotSets, hotKeysQuery, type NearFloor } from './hot-sets.ts';
import { createParkedKeys } from './parked-keys.ts';
import { createPositions, newKeysQuery, type NewKeyRow } from './positions.ts';
import { prepare } from './prepared.ts';
import { createOrderRechecks, type Rechecks } from './order-rechecks.ts';
import { createCaseResolver } from './case-resolver.ts';
import { entityEvents, screenBounds, screenRows } from './screen.ts';
import type { DetectorDeps, DetectorStats, DetectorStatus } from './types.ts';

/**
 * Every tick the leader finds the entities that received events since its last tick (by Kafka
 * position per partition), computes their features from ClickHouse with the rules' reference semantics, evaluates
 * only the rules of each entity type, and turns hits into cases. All state lives in ClickHouse:
 * a restart or a new leader decides from the same data (docs/adr/0002). The stages of a tick
 * each keep what they need between ticks: positions.ts, hot-sets.ts, parked-keys.ts, context.ts,
 * order-rechecks.ts; screen.ts is the screen and the exact fetch.
 */
export function createDetector(deps: DetectorDeps) {
  const now = deps.now ?? Date.now;
  const live = !deps.writtenBy;
  // Replaced as a whole by setRuleSet (hot reload); a tick in progress keeps the set it started with.
  let active = prepare(deps.ruleSet);
  const current = () => active;
  const positions = createPositions(deps);
  const readKeys = async (entity: EventEntity, fromSec: number, atLeast: number, filter: EventFilter | undefined, threads: number) =>
    (
      await queryRows<{ k: string }>(deps.clickhouse, hotKeysQuery(deps.database, entity, fromSec, atLeast, filter, threads), `${entity} near volume floor`)
    ).map((r) => String(r.k));
  const hotSets = createHotSets({ readKeys, logger: deps.logger, current });
  const parked = createParkedKeys({ current });
  const context = createContext({ ...deps, current });
  const rechecks = createOrderRechecks(deps);
  const { unresolvedOf, resolveBySystem } = deps.cases;
  const resolver = unresolvedOf && resolveBySystem ? createCaseResolver({ ...deps, cases: { unresolvedOf, resolveBySystem } }) : undefined;
  const stats: Omit<DetectorStats, 'floorsReady' | 'parked'> = {
    ticks: 0,
    rows: 0,
    behind: false,
    screened: 0,
    evaluated: 0,
    hits: 0,
    opened: 0,
    updated: 0,
    resolved: 0,
    lastTickMs: 0,
    nearFloor: 0,
    parkedSkips: 0,
  };

  async function tick(): Promise<void> {
    if (!deps.isLeader()) {
      // What follows the positions taken as leader starts afresh with the next leadership.
      positions.reset();
      hotSets.reset();
      parked.reset();
      rechecks.reset();
      resolver?.reset();
      stats.behind = false;
      return;
    }
    const nowMs = now();
    const t0 = performance.now();
    context.warm(nowMs);
    // The rule set this tick decides with: a reload meanwhile (setRuleSet) applies from the next tick.
    const prepared = active;
    const { floors } = prepared;
    const untilSec = deps.writtenBy?.(nowMs);
    const rows = await positions.scan(nowMs, untilSec, Math.floor((nowMs - prepared.longestWindowMs) / 1000));
    const timings: Record<string, number> = { new_rows: performance.now() - t0 };

    // Volume floors (live only): which touched entities may have enough events for a rule.
    hotSets.dropStale();
    let nearFloor: NearFloor | null = null;
    if (floors.size > 0 && live && hotSets.due(nowMs, rows.any)) {
      parked.dropExpired(nowMs);
      void hotSets.refresh(nowMs);
    }
    if (floors.size > 0 && live && rows.any) {
      const keysStarted = performance.now();
      const keys = hotSets.counting() ? await queryRows<NewKeyRow>(deps.clickhouse, newKeysQuery(deps.database, rows.sinceSec, rows.position), 'new keys') : [];
      hotSets.count(keys, floors);
      // Parked keys count every new row (none is missed: a tick without the rows drops them).
      parked.grow(keys, prepared, hotSets.counting());
      nearFloor = hotSets.nearFloor(keys, floors, (e) => parked.stays(e, prepared.rulesOf(e), prepared.screens.get(e)!, nowMs));
      stats.nearFloor += nearFloor?.near ?? 0;
      stats.parkedSkips += nearFloor?.skipped ?? 0;
      timings.new_keys = performance.now() - keysStarted;
    }

    // Orders stuck past an age threshold and those the reconcile job found: every 10 s.
    const recheckDue = rechecks.due(nowMs, prepared.entitiesWithRules.has('order'));
    const rechecked: Rechecks[] = [];
    const candidates: Record<EventEntity, Set<string>> = { ip: new Set(), device: new Set(), user: new Set(), order: new Set() };
    let hitCount = 0;

    /**
     * One entity type from screen to stored and published cases. The types run side by side and
     * each publishes its own cases as soon as they are decided: a card-testing IP does not wait
     * for the orders' 24-hour windows. (rule, entity) keys never span types, so their case
     * decisions cannot collide.
     */
    const detectType = async (entity: EventEntity) => {
      const found = candidates[entity];
      const rules = prepared.rulesOf(entity);
      const entityWindowMs = prepared.windowOf.get(entity)!;
      // Which entities may hit: every entity touched by the new rows (or, near a volume floor,
      // those by id), screened in SQL (screen.ts). Only those for which some rule may hold get
      // the exact, reference computation below.
      if (rows.any) {
        const started = performance.now();
        const columns = prepared.screens.get(entity)!;
        const ids = nearFloor?.ids.get(entity);
        const park = ids ? prepared.parking.get(entity) : undefined;
        const screened = await screenRows(deps, {
          entity,
          columns,
          rules,
          nowMs,
          sinceSec: rows.sinceSec,
          position: rows.position,
          untilSec,
          entityWindowMs,
          ids,
          park,
        });
        // Keys are parked only for the rules in force: after a reload during the screen, its keys
        // were judged by rules no longer in force.
        const parker = park && prepared === active ? parked.parker(entity, rules, columns, nowMs, park.horizonMs) : undefined;
        for (const row of screened) {
          const key = String(row.entity_key);
          if (anyMayHold(rules, screenBounds(columns, row, nowMs))) {
            found.add(key);
            stats.screened++;
          } else parker?.park(key, row);
        }
        parker?.done();
        timings[`${entity}_screen`] = performance.now() - started;
      }
      if (entity === 'order' && recheckDue) {
        const r = await rechecks.find(nowMs, prepared.stuckThresholds, untilSec);
        for (const id of r.orders) found.add(id);
        rechecked.push(r);
      }
      if (found.size === 0) return;
      const ctxStarted = performance.now();
      const ctx = prepared.contextReaders.has(entity) ? await context.facts(nowMs, rows.contextKeys) : context.latest();
      timings[`${entity}_context`] = performance.now() - ctxStarted;
      const hits: Hit[] = [];
      const ids = [...found];
      for (let i = 0; i < ids.length; i += 5_000) {
        const fetchStarted = performance.now();
        const events = await entityEvents(deps, entity, ids.slice(i, i + 5_000), nowMs, entityWindowMs, untilSec);
        timings[`${entity}_fetch`] = (timings[`${entity}_fetch`] ?? 0) + performance.now() - fetchStarted;
        const evalStarted = performance.now();
        for (const [entityId, list] of events) {
          const facts: Record<string, number> = computeFacts(prepared.ruleSet.catalog, { entity, entityId }, list, nowMs, prepared.read);
          addContext(facts, ctx, prepared.features, list, nowMs);
          stats.evaluated++;
          hits.push(...(await prepared.evaluator.evaluate(entity, entityId, facts)));
        }
        timings[`${entity}_eval`] = (timings[`${entity}_eval`] ?? 0) + performance.now() - evalStarted;
      }
      if (hits.length === 0) return;
      const casesStarted = performance.now();
      const { opened, updated } = await deps.cases.applyHits(hits, nowMs);
      for (const c of opened)
        deps.logger.info('case opened', { case_id: c.case_id, rule: c.rule_id, entity: `${c.entity_type} ${c.entity_id}`, severity: c.severity });
      hitCount += hits.length;
      stats.hits += hits.length;
      stats.opened += opened.length;
      stats.updated += updated.length;
      timings[`${entity}_cases`] = performance.now() - casesStarted;
    };
    // Every type is waited for, also when one fails: the tick is then repeated as a whole, and
    // none of its work may still be running when the next one starts.
    const outcomes = await Promise.allSettled(
      EVENT_ENTITIES.filter((e) => prepared.entitiesWithRules.has(e) && (rows.any || (e === 'order' && recheckDue))).map(detectType),
    );
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
    // After the hits: a case opened by this tick is looked at with the same facts by the next run.
    if (resolver?.due(nowMs)) {
      const resolveStarted = performance.now();
      stats.resolved += (await resolver.run(prepared, context.latest(), nowMs, untilSec)).length;
      timings.resolve = performance.now() - resolveStarted;
    }
    stats.ticks++;
    stats.lastTickMs = now() - nowMs;
    deps.logger.debug('tick', {
      ms: stats.lastTickMs,
      rows: rows.taken,
      behind: rows.behind,
      hits: hitCount,
      parked: parked.count(),
      candidates: Object.fromEntries(EVENT_ENTITIES.map((e) => [e, candidates[e].size])),
      timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
    });
    // Advance only after the cases were stored and published: a failed tick is repeated.
    for (const r of rechecked) r.commit();
    positions.advance(rows);
    stats.rows += rows.taken;
    stats.behind = rows.behind;
  }

  const status: DetectorStatus = { ticks: 0, failedInARow: 0, lastFailure: null };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  // Ticks start every tickMs (a tick that takes longer is followed at once by the next), so
  // the time a tick takes does not add to the wait for the next one.
  const loop = () => {
    if (stopped) return;
    const started = Date.now();
    let failed = false;
    running = tick()
      .then(
        () => {
          status.ticks++;
          status.failedInARow = 0;
        },
        (err: unknown) => {
          failed = true;
          status.failedInARow++;
          status.lastFailure = { reason: err instanceof Error ? err.message : String(err), atMs: now() };
          deps.logger.warn('detection tick failed; it is repeated on the next tick', { err });
        },
      )
      .finally(() => {
        // Ticks start every tickMs. While detection has a backlog it takes at most about two
        // thirds of the time: its queries share the cores with ingest, and back-to-back ticks
        // during a burst halved ingest throughput (bench:ingest). Otherwise a tick's rows are
        // what arrived during the previous one, and a pause would only add to every case's
        // latency. After a failure it waits a full interval.
        const elapsed = Date.now() - started;
        const tickMs = deps.tickMs ?? 250;
        const wait = failed ? tickMs : Math.max(tickMs - elapsed, stats.behind ? elapsed / 2 : 0);
        if (!stopped) timer = setTimeout(loop, wait);
      });
  };
  return {
    start(): void {
      loop();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
      await context.stop();
    },
    tick,
    /** Swaps in a new, already validated rule set; the next tick uses it. */
    setRuleSet(ruleSet: RuleSet): void {
      active = prepare(ruleSet);
      context.reset();
    },
    ruleSet: (): RuleSet => active.ruleSet,
    stats: (): Readonly<DetectorStats> => ({ ...stats, floorsReady: hotSets.ready(), parked: parked.count() }),
    /** The loop's health (a copy). */
    status: (): DetectorStatus => ({ ...status }),
  };
}
export type Detector = ReturnType<typeof createDetector>;
export type { DetectorDeps, DetectorStats, DetectorStatus } from './types.ts';
