import type { Producer } from 'kafkajs';
import type { Hit } from '../rules/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, joinSql, sql, sqlFragment, toDateTimeText, type SqlFragment } from '../storage/sql.ts';
import { decideCases, machineEvidence, SYSTEM_ACTOR, SYSTEM_RESOLUTION, type Case, type CaseStatus, type Resolution } from './decide.ts';
import { createUpdateHold, publishedAtMs, withHits } from './throttle.ts';
import { precisionColumns } from './precision.ts';

interface StoredCase extends Omit<Case, 'evidence' | 'hit_count'> {
  evidence: string;
  hit_count: number | string;
}

const fromStored = (r: StoredCase): Case => ({ ...r, hit_count: Number(r.hit_count), evidence: JSON.parse(r.evidence || '{}') as Record<string, unknown> });

export interface CaseFilter {
  status?: string;
  rule?: string;
  sinceMs?: number;
  limit?: number;
}

/** Where an inbox page continues: the last case shown, in inbox order. */
export interface InboxCursor {
  rank: number;
  openedAt: string;
  caseId: string;
}

/** The support console's inbox: every filter optional; `q` is a case id or an entity id (order, IP, device, user...). */
export interface InboxFilter {
  status?: string;
  severity?: string;
  rule?: string;
  entityType?: string;
  entityId?: string;
  /** A user name, or '' for unassigned cases. */
  assignee?: string;
  /** Leave out cases assigned to this name (the inbox leaves out what automation is handling). */
  notAssignee?: string;
  q?: string;
  /** Only cases opened at or after this time (ms): no older than an age. */
  openedFromMs?: number;
  /** Only cases opened before this time (ms): waiting longer than an age. */
  openedBeforeMs?: number;
  limit: number;
  after?: InboxCursor;
}

/** Severity order of the inbox: most severe first (unknown severities last). */
const SEVERITY_RANK = sqlFragment`multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, severity = 'low', 3, 4)`;

/**
 * Filters the `cases` view's versions before it aggregates them, instead of aggregating every
 * case and filtering after: 18.16 does so only when asked (current servers do by default). Used
 * where the filter is on what never changes within a case (its id, its entity), so the result is
 * the same either way; a case look-up among 100,000 cases went from about 0.9 s to 0.1 s here.
 */
const NARROW = sqlFragment`SETTINGS enable_optimize_predicate_expression = 1`;

/** Rows an inbox page asks for: its limit (1 to 500) and one more, which tells whether a next page exists. */
const inboxRows = (f: InboxFilter): number => Math.min(Math.max(1, Math.floor(f.limit)), 500) + 1;

/** The inbox filter as conditions on a case's columns (its current state, or one version's row). */
function inboxWhere(f: InboxFilter): SqlFragment {
  const where: SqlFragment[] = [sqlFragment`1`];
  if (f.status) where.push(sqlFragment`status = ${f.status}`);
  if (f.severity) where.push(sqlFragment`severity = ${f.severity}`);
  if (f.rule) where.push(sqlFragment`rule_id = ${f.rule}`);
  if (f.entityType) where.push(sqlFragment`entity_type = ${f.entityType}`);
  if (f.entityId) where.push(sqlFragment`entity_id = ${f.entityId}`);
  if (f.assignee !== undefined) where.push(sqlFragment`assignee = ${f.assignee}`);
  if (f.notAssignee !== undefined) where.push(sqlFragment`assignee != ${f.notAssignee}`);
  if (f.q) where.push(sqlFragment`(case_id = ${f.q} OR entity_id = ${f.q})`);
  if (f.openedFromMs !== undefined) where.push(sqlFragment`opened_at >= toDateTime(${Math.floor(f.openedFromMs / 1000)}, 'UTC')`);
  if (f.openedBeforeMs !== undefined) where.push(sqlFragment`opened_at < toDateTime(${Math.floor(f.openedBeforeMs / 1000)}, 'UTC')`);
  if (f.after) {
    const { rank, openedAt, caseId } = f.after;
    where.push(
      sqlFragment`(sev_rank > ${rank} OR (sev_rank = ${rank} AND (opened_at < toDateTime(${openedAt}, 'UTC')
    OR (opened_at = toDateTime(${openedAt}, 'UTC') AND case_id > ${caseId}))))`,
    );
  }
  return joinSql(where, ' AND ');
}

/** A row of an inbox page in inbox order: severity rank, opening time (text, UTC) and case id. */
export interface InboxKey {
  case_id: string;
  sev_rank: number | string;
  opened_at: string;
}

/** Inbox order: severity rank up, opening time down, case id up (bytes, as ClickHouse compares strings). */
export function compareInboxKeys(a: InboxKey, b: InboxKey): number {
  return (
    Number(a.sev_rank) - Number(b.sev_rank) ||
    (a.opened_at < b.opened_at ? 1 : a.opened_at > b.opened_at ? -1 : 0) ||
    Buffer.compare(Buffer.from(a.case_id), Buffer.from(b.case_id))
  );
}

/**
 * The inbox page from the candidates' current state, or null when the candidates cannot tell it.
 * `candidates` are the first rows (at most `asked`) of case_state in inbox order that pass the
 * filter on their own values; `current` is the current state of those cases that passes the
 * filter, in inbox order (`inboxCurrent`). A case that passes now has its latest version among
 * the rows that pass, so every such case that sorts no later than the last candidate is in
 * `current`: those rows are exactly the start of the page. When fewer candidates came back than
 * asked, the candidates were every row that passes and `current` is the whole answer. When the
 * candidates were cut off and fewer than `want` current rows sort before the cut (older versions
 * crowded the candidates), the page is unknown: null, and the caller asks over every case. Pure.
 */
export function inboxPageFrom<K extends InboxKey>(candidates: readonly InboxKey[], asked: number, current: readonly K[], want: number): K[] | null {
  if (candidates.length < asked) return current.slice(0, want);
  const last = candidates.at(-1)!;
  const before = current.filter((c) => compareInboxKeys(c, last) <= 0);
  return before.length >= want ? before.slice(0, want) : null;
}

/**
 * Each case's current state, as the `cases` view computes it (migrations 010, 018), of the
 * versions that pass `where` only: the view aggregates every case, and 18.16 does not narrow it
 * unless asked. Inner aliases differ from the outer names because 18.16 resolves an alias named
 * like a column across the whole query.
 */
function currentState(versions: SqlFragment, where: SqlFragment): SqlFragment {
  return sqlFragment`SELECT
    case_id,
    argMax(v_rule_id, version) AS rule_id, argMax(v_rule_version, version) AS rule_version, argMax(v_title, version) AS title,
    argMax(v_severity, version) AS severity, argMax(v_action, version) AS action, argMax(v_entity_type, version) AS entity_type,
    argMax(v_entity_id, version) AS entity_id, argMax(v_status, version) AS status, min(v_opened_at) AS opened_at,
    max(v_updated_at) AS updated_at, max(v_hit_count) AS hit_count, argMax(v_evidence, version) AS evidence,
    argMax(v_recommended_action, version) AS recommended_action, argMax(v_assignee, version) AS assignee,
    argMax(v_resolution, version) AS resolution
  FROM
  (
    SELECT case_id, version, rule_id AS v_rule_id, rule_version AS v_rule_version, title AS v_title, severity AS v_severity,
      action AS v_action, entity_type AS v_entity_type, entity_id AS v_entity_id, status AS v_status, opened_at AS v_opened_at,
      updated_at AS v_updated_at, hit_count AS v_hit_count, evidence AS v_evidence, recommended_action AS v_recommended_action,
      assignee AS v_assignee, resolution AS v_resolution
    FROM ${versions} WHERE ${where}
  )
  GROUP BY case_id`;
}

/** The statements the case store sends (listed in test/sql-catalog.ts for the compatibility check). */
export function caseQueries(database: string) {
  const versions = ident(database, 'case_versions');
  const view = ident(database, 'cases');
  const state = ident(database, 'case_state');
  return {
    /**
     * The id of the latest case of each (rule, entity) among `keys`: found by case_state's key
     * (entity), instead of aggregating every case in the view. Every version of a case has its
     * rule, entity and opening time, so any row of the newest case names it.
     */
    latestIdsFor: (keys: readonly [string, string, string][]) =>
      sql`SELECT case_id FROM ${state} WHERE (entity_type, entity_id) IN ${keys.map((k) => [k[1], k[2]])}
  AND (rule_id, entity_type, entity_id) IN ${keys.map((k) => [...k])} ORDER BY opened_at DESC, case_id LIMIT 1 BY rule_id, entity_type, entity_id`,
    byId: (caseId: string) => sql`SELECT * FROM ${view} WHERE case_id = ${caseId} ${NARROW}`,
    byIds: (caseIds: readonly string[]) => sql`SELECT * FROM ${view} WHERE case_id IN ${caseIds} ${NARROW}`,
    list: (filter: CaseFilter) => {
      const where: SqlFragment[] = [sqlFragment`1`];
      if (filter.status) where.push(sqlFragment`status = ${filter.status}`);
      if (filter.rule) where.push(sqlFragment`rule_id = ${filter.rule}`);
      if (filter.sinceMs !== undefined) where.push(sqlFragment`updated_at >= toDateTime(${Math.floor(filter.sinceMs / 1000)}, 'UTC')`);
      const limit = Math.min(Math.max(1, Math.floor(filter.limit ?? 200)), 10_000);
      return sql`SELECT * FROM ${view} WHERE ${joinSql(where, ' AND ')} ORDER BY updated_at DESC, case_id LIMIT ${limit}`;
    },
    /**
     * Inbox candidates: the first `rows` rows of case_state (migration 023) in inbox order whose
     * own values pass the filter. case_state may still hold older versions of a case besides its
     * latest, so a candidate is not yet a result: `inboxCurrent` checks the candidates' current
     * state. Sorting narrow rows by the inbox order reads no evidence and aggregates nothing.
     */
    inboxCandidates: (f: InboxFilter, rows: number) =>
      sql`SELECT case_id, version, ${SEVERITY_RANK} AS sev_rank, opened_at FROM ${state} WHERE ${inboxWhere(f)} ` +
      sql`ORDER BY sev_rank, opened_at DESC, case_id LIMIT ${Math.min(Math.max(1, Math.floor(rows)), 10_000)}`,
    /**
     * One inbox page in order: each case's current state (as the `cases` view computes it, in
     * full) that passes the filter, most severe first, newest first within a severity, then by id; `limit +
     * 1` rows so the caller knows whether a next page exists. Keyset paging, so a page costs the
     * same however deep it is and cases opened meanwhile do not shift the pages. Among the cases
     * `among` (the candidates), or among every case when it is not given.
     */
    inboxCurrent: (f: InboxFilter, among?: readonly string[]) => {
      // What never changes within a case is tested before aggregating; the rest on the current state.
      const fixed: SqlFragment[] = [sqlFragment`1`];
      if (among) fixed.push(sqlFragment`case_id IN ${among}`);
      if (f.rule) fixed.push(sqlFragment`rule_id = ${f.rule}`);
      if (f.entityType) fixed.push(sqlFragment`entity_type = ${f.entityType}`);
      if (f.entityId) fixed.push(sqlFragment`entity_id = ${f.entityId}`);
      if (f.q) fixed.push(sqlFragment`(case_id = ${f.q} OR entity_id = ${f.q})`);
      if (f.openedFromMs !== undefined) fixed.push(sqlFragment`opened_at >= toDateTime(${Math.floor(f.openedFromMs / 1000)}, 'UTC')`);
      if (f.openedBeforeMs !== undefined) fixed.push(sqlFragment`opened_at < toDateTime(${Math.floor(f.openedBeforeMs / 1000)}, 'UTC')`);
      return sql`SELECT *, ${SEVERITY_RANK} AS sev_rank FROM (${currentState(versions, joinSql(fixed, ' AND '))})
  WHERE ${inboxWhere(f)} ORDER BY sev_rank, opened_at DESC, case_id LIMIT ${inboxRows(f)}`;
    },
    /**
     * Per rule, over the cases opened in the 30 days before `nowMs`: cases opened in the last
     * 24 h and 7 d, their hits, and the precision from support's resolutions (cases/precision.ts).
     */
    ruleStats: (nowMs: number) => {
      const sec = Math.floor(nowMs / 1000);
      return sql`SELECT rule_id AS rule, countIf(opened_at >= toDateTime(${sec - 86_400}, 'UTC')) AS cases_24h,
    countIf(opened_at >= toDateTime(${sec - 7 * 86_400}, 'UTC')) AS cases_7d,
    sumIf(hit_count, opened_at >= toDateTime(${sec - 7 * 86_400}, 'UTC')) AS hits_7d,
    count() AS cases_30d, ${precisionColumns('resolution')}
  FROM ${view} WHERE opened_at >= toDateTime(${sec - 30 * 86_400}, 'UTC') GROUP BY rule_id ORDER BY rule_id`;
    },
    /**
     * Cases per status, from case_state (migration 023) with FINAL: its key names one case and
     * FINAL keeps the row of the highest version of each key, so this is each case's current
     * status whether or not the parts have merged (measured with 100,000 cases on 18.16: 20-30
     * ms, against 100-170 ms for argMax per case). No WHERE here: 18.16 may apply a condition
     * (moved to PREWHERE) before FINAL replaces the rows, and count a case by an older version.
     */
    countsByStatus: () => sql`SELECT status, count() AS n FROM ${state} FINAL GROUP BY status ORDER BY status`,
    /** The ids of some entities' cases (an order's cases), newest first, at most 100: found by case_state's key. */
    idsOfEntities: (entityType: string, ids: readonly string[]) =>
      sql`SELECT case_id, min(opened_at) AS first_opened FROM ${state} WHERE entity_type = ${entityType} AND entity_id IN ${ids}
  GROUP BY case_id ORDER BY first_opened DESC, case_id LIMIT 100`,
    /** Each case as it stood just before `ms` (its latest version then). */
    asOf: (ms: number) =>
      sql`SELECT case_id, rule_id, rule_version, title, severity, action, entity_type, entity_id, status, opened_at, updated_at, hit_count, evidence,
    recommended_action, assignee, resolution
  FROM ${versions} WHERE version < ${ms} ORDER BY version DESC LIMIT 1 BY case_id`,
    /** Cases of these rules not resolved yet, longest untouched first: what a resolve_when may close. */
    unresolvedOf: (ruleIds: readonly string[], limit: number) =>
      sql`SELECT * FROM ${view} WHERE rule_id IN ${ruleIds} AND status != 'resolved' ORDER BY updated_at, case_id
  LIMIT ${Math.min(Math.max(1, Math.floor(limit)), 50_000)}`,
    history: (caseId: string) =>
      sql`SELECT version, status, updated_at, hit_count, changed_by, note, assignee, resolution FROM ${versions} WHERE case_id = ${caseId} ORDER BY version`,
  };
}

export interface CaseStoreDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  topic: string;
  /**
   * A case's updates from further hits are published (stored, on the topic, to the webhook) at
   * most once per this interval, the latest state winning; opening and support's changes are
   * published at once. 0 publishes every update. Held updates are published when due (a timer)
   * and by `flush()` at shutdown. @default 0
   */
  updateIntervalMs?: number;
  /** The clock of the timer that publishes held updates. @default Date.now */
  now?: () => number;
}

/** The latest case of every (rule, entity) as it stood just before `ms`, keyed `rule|entity_type|entity_id`. */
export async function casesAsOf(clickhouse: ClickHouseClient, database: string, ms: number): Promise<Map<string, Case>> {
  const latest = new Map<string, Case>();
  for (const c of (await queryRows<StoredCase>(clickhouse, caseQueries(database).asOf(ms), 'cases as of')).map(fromStored)) {
    const key = `${c.rule_id}|${c.entity_type}|${c.entity_id}`;
    const seen = latest.get(key);
    if (!seen || c.opened_at > seen.opened_at) latest.set(key, c);
  }
  return latest;
}

/** (rule, entity) keys per case look-up statement: about 5 AST nodes each, far below ClickHouse's limit. */
const LATEST_SLICE = 2_000;
/** An inbox page asks case_state for this many candidate rows per row it shows (older versions may be among them). */
const INBOX_CANDIDATES = 4;
/** Bytes of case JSON per Kafka send. */
const SEND_BYTES = 512 * 1024;

/** Automation's actor and assignee (AUTOMATION_ACTOR and AUTOMATION_ASSIGNEE in automation/). */
const AUTOMATION = 'automation';

/**
 * A change by automation or the system (`next`: the case as the caller read it, with its change)
 * applied on top of the case as stored now, or null when it no longer applies. A resolved case
 * stays as support or the system left it; a case a person took, or one being resolved, keeps its
 * assignee; otherwise the change's assignee, a resolution it makes and the evidence it adds (`automation`, `closed_by`)
 * go on top of the stored state, so detection's newer evidence, severity or title are kept.
 */
export function machineChange(stored: Case, next: Case): Case | null {
  if (stored.status === 'resolved') return null;
  const personHolds = stored.assignee !== '' && stored.assignee !== AUTOMATION;
  const resolves = next.status === 'resolved';
  const added = machineEvidence(next.evidence);
  return {
    ...stored,
    status: resolves ? 'resolved' : stored.status,
    resolution: resolves ? next.resolution : stored.resolution,
    assignee: personHolds || resolves ? stored.assignee : next.assignee,
    evidence: { ...stored.evidence, ...added },
  };
}

/**
 * Cases live in ClickHouse (append-only versions, `cases` view = current state) and every
 * version is published to Kafka. There is no in-memory state, so a restart, a new leader or a
 * change made with the CLI is always seen by the next decision.
 */
export function createCaseStore(deps: CaseStoreDeps) {
  const versions = ident(deps.database, 'case_versions');
  const q = caseQueries(deps.database);
  const clock = deps.now ?? Date.now;
  const hold = createUpdateHold(deps.updateIntervalMs ?? 0);
  // Hits and the publication of held updates run one at a time: both read, merge and write the same cases.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work);
    chain = next.catch(() => {});
    return next;
  };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // The highest version this store has written: a change on top of a case is stored after it.
  let lastVersion = 0;
  /**
   * The version of a change made by another stage (automation, the resolve pass) on top of the
   * case as it is now: later than anything this process wrote before, however long ago the
   * caller's pass began. Detection stamps a tick's versions with the tick's start, so a tick that
   * read a case before automation resolved it could otherwise write a later version that reopens it.
   */
  const laterVersion = (nowMs: number) => Math.max(nowMs, clock(), lastVersion + 1);
  /**
   * The version of detection's writes: the tick's time, unless this store already wrote a later
   * version (automation's change stamped with the clock while the tick ran). Detection read that
   * change before merging its hits, so its write must come after it, or the hits would be hidden
   * behind the older copy.
   */
  const afterLast = (nowMs: number) => Math.max(nowMs, lastVersion + 1);

  /**
   * Publishes the held updates due at `nowMs` (every one with Infinity), each merged into the
   * case as stored now, so a status, assignee or resolution support set meanwhile is kept.
   */
  async function publishHeld(nowMs: number, publishMs: number): Promise<Case[]> {
    const due = hold.takeDue(nowMs);
    if (due.length === 0) return [];
    try {
      const stored = new Map<string, Case>();
      for (let i = 0; i < due.length; i += LATEST_SLICE) {
        const ids = due.slice(i, i + LATEST_SLICE).map((c) => c.case_id);
        for (const r of await queryRows<StoredCase>(deps.clickhouse, q.byIds(ids), 'read held cases')) stored.set(r.case_id, fromStored(r));
      }
      const merged = due.map((c) => ({ ...withHits(stored.get(c.case_id) ?? c, c), updated_at: toDateTimeText(publishMs) }));
      const version = afterLast(publishMs);
      await write(merged.map((c) => ({ c, version, changedBy: 'detector', note: '' })));
      return merged;
    } catch (err) {
      hold.restore(due, nowMs);
      throw err;
    }
  }

  /** Keeps one timer for the earliest held update; a failed publication is tried again a few seconds later. */
  function schedule(): void {
    if (timer || closed) return;
    const next = hold.nextDueMs();
    if (next === null) return;
    timer = setTimeout(
      () => {
        timer = undefined;
        const at = clock();
        serial(() => publishHeld(at, at))
          .catch(() => hold.size > 0 && (timer = setTimeout(() => ((timer = undefined), schedule()), 5_000)))
          .finally(schedule);
      },
      Math.max(0, next - clock()),
    );
  }

  /** Stores versions (one insert) and then publishes them (one send): a version is on the topic only once it is stored. */
  async function write(changes: readonly { c: Case; version: number; changedBy: string; note: string }[]): Promise<void> {
    if (changes.length === 0) return;
    for (const { version } of changes) lastVersion = Math.max(lastVersion, version);
    await insertRows(
      deps.clickhouse,
      versions.text,
      changes.map(({ c, version, changedBy, note }) => ({
        ...c,
        evidence: JSON.stringify(c.evidence),
        version,
        opened_at: c.opened_at,
        updated_at: c.updated_at,
        changed_by: changedBy,
        note,
      })),
    );
    const messages = changes.map(({ c, version, changedBy, note }) => ({
      key: c.case_id,
      value: JSON.stringify({ ...c, version, changed_by: changedBy, note }),
    }));
    // Sends of at most ~512 KiB: the broker refuses requests over its 1 MB default, and a tick
    // with thousands of cases would then fail on every retry.
    for (let i = 0; i < messages.length; ) {
      let bytes = 0;
      let j = i;
      while (j < messages.length && (j === i || bytes + messages[j]!.value.length < SEND_BYTES)) bytes += messages[j++]!.value.length;
      await deps.producer.send({ topic: deps.topic, acks: -1, messages: messages.slice(i, j) });
      i = j;
    }
  }

  /** The latest case of each (rule, entity) among `keys`. */
  async function latestFor(keys: readonly [string, string, string][]): Promise<Map<string, Case>> {
    const latest = new Map<string, Case>();
    // In slices: a tick with thousands of hits must not build one statement too big to parse
    // (ClickHouse refuses an AST of more than 50,000 nodes, and the tick would fail forever).
    for (let i = 0; i < keys.length; i += LATEST_SLICE) {
      const ids = await queryRows<{ case_id: string }>(deps.clickhouse, q.latestIdsFor(keys.slice(i, i + LATEST_SLICE)), 'find cases');
      if (ids.length === 0) continue;
      const rows = await queryRows<StoredCase>(deps.clickhouse, q.byIds(ids.map((r) => r.case_id)), 'read cases');
      for (const r of rows) latest.set(`${r.rule_id}|${r.entity_type}|${r.entity_id}`, fromStored(r));
    }
    return latest;
  }

  return {
    /**
     * Applies rule hits: one case per (rule, entity) while it is open or acknowledged, or
     * resolved less than the rule's cooldown ago; further hits update it. A new case is published
     * at once; an update from further hits at most once per `updateIntervalMs` (held until then,
     * the latest winning). Returns what was opened and what was published as updated.
     */
    async applyHits(hits: readonly Hit[], nowMs: number): Promise<{ opened: Case[]; updated: Case[] }> {
      return serial(async () => {
        const stored = await latestFor(hits.map((h) => [h.ruleId, h.entityType, h.entityId]));
        // Decide on the state support will see: the stored case with the hits held for it so far.
        const latest = new Map([...stored].map(([key, c]) => [key, hold.get(c.case_id) ? withHits(c, hold.get(c.case_id)!) : c]));
        const { opened, updated } = decideCases(hits, latest, nowMs);
        const now = updated.filter((c) => {
          const before = stored.get(`${c.rule_id}|${c.entity_type}|${c.entity_id}`);
          return !before || !hold.hold(c, publishedAtMs(before), nowMs);
        });
        const version = afterLast(nowMs);
        await write([...opened, ...now].map((c) => ({ c, version, changedBy: 'detector', note: '' })));
        // Held updates of other cases that are due go out with this tick.
        const due = await publishHeld(nowMs, nowMs);
        schedule();
        return { opened, updated: [...now, ...due] };
      });
    },

    /** Publishes every held update now: at shutdown, before the producer disconnects. Later held updates are published at once. */
    async flush(): Promise<void> {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await serial(() => publishHeld(Infinity, clock()));
    },

    /** Changes a case's status (support acknowledges or resolves it, from the CLI), recorded with who and why. */
    async setStatus(caseId: string, status: CaseStatus, who: string, note: string, nowMs: number, resolution?: Resolution): Promise<Case | null> {
      // In turn with this process's other writes, and stamped after what it read (see laterVersion).
      return serial(async () => {
        const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(caseId), 'read case');
        if (rows.length === 0) return null;
        const current = fromStored(rows[0]!);
        // Reopening or acknowledging clears a resolution; resolving records the one given.
        const next: Case = {
          ...current,
          status,
          resolution: status === 'resolved' ? (resolution ?? current.resolution) : '',
          updated_at: toDateTimeText(nowMs),
        };
        await write([{ c: next, version: laterVersion(nowMs), changedBy: who, note }]);
        return next;
      });
    },

    /**
     * Support's change to a case: assign it to `who`, acknowledge it, or resolve it with a
     * resolution. A change that no longer applies to the case as stored (resolving a resolved
     * case, acknowledging one already acknowledged) is refused as a `conflict` value.
     */
    async act(caseId: string, change: CaseChange, who: string, note: string, nowMs: number): Promise<ActResult> {
      return serial(async () => {
        const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(caseId), 'read case');
        if (rows.length === 0) return { kind: 'not_found' } as const;
        const c = fromStored(rows[0]!);
        const conflict = conflictOf(c, change, who);
        if (conflict) return { kind: 'conflict', message: conflict, case: c } as const;
        const next: Case = { ...c, updated_at: toDateTimeText(nowMs) };
        if (change.action === 'assign') next.assignee = who;
        if (change.action === 'acknowledge') next.status = 'acknowledged';
        if (change.action === 'resolve') Object.assign(next, { status: 'resolved', resolution: change.resolution });
        // Stamped by the clock when written, not when support clicked: a machine change stored
        // while this one read the case (stamped by its own clock then) must not hide it.
        await write([{ c: next, version: laterVersion(nowMs), changedBy: who, note }]);
        return { kind: 'ok', case: next } as const;
      });
    },

    /**
     * Stores `next` as a new version of its case, by `who` with `note`: what a stage other than
     * support and detection does to a case (automation takes it, escalates it, closes it).
     */
    async record(next: Case, who: string, note: string, nowMs: number): Promise<Case> {
      // In turn with detection's read-decide-write of hits, and stamped after it: see laterVersion.
      return serial(async () => {
        let change = next;
        if (who === AUTOMATION || who === SYSTEM_ACTOR) {
          // The caller read the case before its pass's queries and sends: apply its change on top
          // of the case as stored now, so what support or detection did meanwhile is kept.
          const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(next.case_id), 'read case');
          if (rows[0]) {
            const stored = fromStored(rows[0]);
            const merged = machineChange(stored, next);
            if (!merged) return stored;
            change = merged;
          }
        }
        const version = laterVersion(nowMs);
        const c = { ...change, updated_at: toDateTimeText(version) };
        await write([{ c, version, changedBy: who, note }]);
        return c;
      });
    },

    /** Cases of these rules not resolved yet (at most `limit`, longest untouched first). */
    async unresolvedOf(ruleIds: readonly string[], limit: number): Promise<Case[]> {
      if (ruleIds.length === 0) return [];
      return (await queryRows<StoredCase>(deps.clickhouse, q.unresolvedOf(ruleIds, limit), 'unresolved cases')).map(fromStored);
    },

    /**
     * Resolves cases whose situation is over (their rule's resolve_when held), by the system:
     * status resolved, resolution SYSTEM_RESOLUTION, the facts and event that showed it kept
     * in the evidence (`closed_by`) and told in the history's note. One insert, one send.
     */
    async resolveBySystem(closing: readonly { c: Case; closedBy: Record<string, unknown>; note: string }[], nowMs: number): Promise<Case[]> {
      return serial(async () => {
        // On top of the cases as stored now (the caller read them before its event look-ups); one
        // resolved meanwhile, by support or otherwise, keeps its resolution and is left alone.
        const stored = new Map<string, Case>();
        if (closing.length > 0) {
          const rows = await queryRows<StoredCase>(deps.clickhouse, q.byIds(closing.map(({ c }) => c.case_id)), 'read cases');
          for (const r of rows) stored.set(r.case_id, fromStored(r));
        }
        const version = laterVersion(nowMs);
        const writes: { c: Case; version: number; changedBy: string; note: string }[] = [];
        for (const { c, closedBy, note } of closing) {
          const change: Case = { ...c, status: 'resolved', resolution: SYSTEM_RESOLUTION, evidence: { ...c.evidence, closed_by: closedBy } };
          const merged = machineChange(stored.get(c.case_id) ?? c, change);
          if (merged) writes.push({ c: { ...merged, updated_at: toDateTimeText(version) }, version, changedBy: SYSTEM_ACTOR, note });
        }
        await write(writes);
        return writes.map((w) => w.c);
      });
    },

    async list(filter: CaseFilter): Promise<Case[]> {
      return (await queryRows<StoredCase>(deps.clickhouse, q.list(filter), 'list cases')).map(fromStored);
    },

    /**
     * One inbox page and where the next one starts (null: this is the last). The page's cases
     * are found in case_state (a few hundred narrow candidate rows in inbox order), then read in
     * full, as they are now, from case_versions by id; over every case only when older versions
     * crowd the candidates.
     */
    async inbox(filter: InboxFilter): Promise<{ cases: Case[]; next: InboxCursor | null }> {
      type Row = StoredCase & { sev_rank: number | string };
      const want = Math.min(Math.max(1, Math.floor(filter.limit)), 500) + 1;
      const asked = want * INBOX_CANDIDATES;
      const candidates = await queryRows<InboxKey>(deps.clickhouse, q.inboxCandidates(filter, asked), 'inbox candidates');
      let rows: Row[] | null = [];
      if (candidates.length > 0) {
        const among = [...new Set(candidates.map((c) => c.case_id))];
        rows = inboxPageFrom(candidates, asked, await queryRows<Row>(deps.clickhouse, q.inboxCurrent(filter, among), 'inbox'), want);
      }
      rows ??= await queryRows<Row>(deps.clickhouse, q.inboxCurrent(filter), 'inbox (every case)');
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      const next = rows.length > filter.limit && last ? { rank: Number(last.sev_rank), openedAt: last.opened_at, caseId: last.case_id } : null;
      return { cases: page.map(({ sev_rank: _rank, ...c }) => fromStored(c)), next };
    },

    /** Per rule: cases in the last 24 h and 7 d, hits, and support's verdicts over 30 days. */
    async ruleStats(nowMs: number): Promise<RuleStats[]> {
      const rows = await queryRows<Record<keyof RuleStats, string | number | null>>(deps.clickhouse, q.ruleStats(nowMs), 'rule stats');
      return rows.map((r) => ({
        rule: String(r.rule),
        cases_24h: Number(r.cases_24h),
        cases_7d: Number(r.cases_7d),
        hits_7d: Number(r.hits_7d),
        cases_30d: Number(r.cases_30d),
        real_cases: Number(r.real_cases),
        false_positives: Number(r.false_positives),
        no_action_cases: Number(r.no_action_cases),
        rule_precision: r.rule_precision === null ? null : Number(r.rule_precision),
      }));
    },

    async countsByStatus(): Promise<Record<string, number>> {
      const rows = await queryRows<{ status: string; n: string | number }>(deps.clickhouse, q.countsByStatus(), 'case counts');
      return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    },

    /** The cases of some entities (an order's cases), newest first, at most 100: ids by case_state's key, then the cases by id. */
    async ofEntities(entityType: string, ids: readonly string[]): Promise<Case[]> {
      if (ids.length === 0) return [];
      const found: string[] = [];
      for (let i = 0; i < ids.length; i += LATEST_SLICE) {
        const rows = await queryRows<{ case_id: string; first_opened: string }>(
          deps.clickhouse,
          q.idsOfEntities(entityType, ids.slice(i, i + LATEST_SLICE)),
          'cases of entities',
        );
        found.push(...rows.map((r) => r.case_id));
      }
      if (found.length === 0) return [];
      const cases = (await queryRows<StoredCase>(deps.clickhouse, q.byIds(found), 'cases of entities')).map(fromStored);
      return cases.sort((a, b) => (a.opened_at < b.opened_at ? 1 : a.opened_at > b.opened_at ? -1 : a.case_id < b.case_id ? -1 : 1)).slice(0, 100);
    },

    async get(caseId: string): Promise<Case | null> {
      const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(caseId), 'read case');
      return rows[0] ? fromStored(rows[0]) : null;
    },

    async history(caseId: string): Promise<CaseHistoryEntry[]> {
      return queryRows(deps.clickhouse, q.history(caseId), 'case history');
    },
  };
}
export type CaseStore = ReturnType<typeof createCaseStore>;

/** A rule's cases and support's verdicts on them (the rules page). */
export interface RuleStats {
  rule: string;
  cases_24h: number;
  cases_7d: number;
  /** Hits of the cases opened in the last 7 days. */
  hits_7d: number;
  cases_30d: number;
  /** Of the cases opened in the last 30 days, resolved confirmed_fraud, customer_contacted or refunded. */
  real_cases: number;
  false_positives: number;
  no_action_cases: number;
  /** real / (real + false positives); null before support resolved any either way. */
  rule_precision: number | null;
}

/** One stored version of a case, as its history shows it. */
export interface CaseHistoryEntry {
  version: string;
  status: string;
  updated_at: string;
  hit_count: number;
  changed_by: string;
  note: string;
  assignee: string;
  resolution: string;
}

/** What support can do to a case. */
export type CaseChange = { action: 'assign' } | { action: 'acknowledge' } | { action: 'resolve'; resolution: Resolution };
export type ActResult = { kind: 'ok'; case: Case } | { kind: 'not_found' } | { kind: 'conflict'; message: string; case: Case };

/** Why `change` no longer applies to `c`, or null when it does. */
export function conflictOf(c: Case, change: CaseChange, who: string): string | null {
  if (c.status === 'resolved') return `Case ${c.case_id} is resolved already (${c.resolution || 'no resolution recorded'}).`;
  if (change.action === 'acknowledge' && c.status === 'acknowledged') return `Case ${c.case_id} is acknowledged already.`;
  if (change.action === 'assign' && c.assignee === who) return `Case ${c.case_id} is assigned to ${who} already.`;
  return null;
}
