import type { Producer } from 'kafkajs';
import type { Hit } from '../rules/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, sql, toDateTimeText } from '../storage/sql.ts';
import { decideCases, type Case, type CaseStatus } from './decide.ts';

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

/** The statements the case store sends (listed in test/sql-catalog.ts for the compatibility check). */
export function caseQueries(database: string) {
  const versions = ident(database, 'case_versions');
  const view = ident(database, 'cases');
  return {
    latestFor: (keys: readonly [string, string, string][]) =>
      sql`SELECT * FROM ${view} WHERE (rule_id, entity_type, entity_id) IN ${keys.map((k) => [...k])} ORDER BY opened_at DESC LIMIT 1 BY rule_id, entity_type, entity_id`,
    byId: (caseId: string) => sql`SELECT * FROM ${view} WHERE case_id = ${caseId}`,
    list: (filter: CaseFilter) => {
      const where: string[] = ['1'];
      if (filter.status) where.push(sql`status = ${filter.status}`);
      if (filter.rule) where.push(sql`rule_id = ${filter.rule}`);
      if (filter.sinceMs !== undefined) where.push(sql`updated_at >= toDateTime(${Math.floor(filter.sinceMs / 1000)}, 'UTC')`);
      return `SELECT * FROM ${view.text} WHERE ${where.join(' AND ')} ORDER BY updated_at DESC, case_id LIMIT ${Math.min(Math.max(1, Math.floor(filter.limit ?? 200)), 10_000)}`;
    },
    /** Each case as it stood just before `ms` (its latest version then). */
    asOf: (ms: number) =>
      sql`SELECT case_id, rule_id, rule_version, title, severity, action, entity_type, entity_id, status, opened_at, updated_at, hit_count, evidence, recommended_action FROM ${versions} WHERE version < ${ms} ORDER BY version DESC LIMIT 1 BY case_id`,
    history: (caseId: string) =>
      sql`SELECT version, status, updated_at, hit_count, changed_by, note FROM ${versions} WHERE case_id = ${caseId} ORDER BY version`,
  };
}

export interface CaseStoreDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  topic: string;
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
/** Bytes of case JSON per Kafka send. */
const SEND_BYTES = 512 * 1024;

/**
 * Cases live in ClickHouse (append-only versions, `cases` view = current state) and every
 * version is published to Kafka. There is no in-memory state, so a restart, a new leader or a
 * change made with the CLI is always seen by the next decision.
 */
export function createCaseStore(deps: CaseStoreDeps) {
  const versions = ident(deps.database, 'case_versions');
  const q = caseQueries(deps.database);

  /** Stores versions (one insert) and then publishes them (one send): a version is on the topic only once it is stored. */
  async function write(changes: readonly { c: Case; version: number; changedBy: string; note: string }[]): Promise<void> {
    if (changes.length === 0) return;
    await insertRows(
      deps.clickhouse,
      versions.text,
      changes.map(({ c, version, changedBy, note }) => ({ ...c, evidence: JSON.stringify(c.evidence), version, opened_at: c.opened_at, updated_at: c.updated_at, changed_by: changedBy, note })),
    );
    const messages = changes.map(({ c, version, changedBy, note }) => ({ key: c.case_id, value: JSON.stringify({ ...c, version, changed_by: changedBy, note }) }));
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
      const rows = await queryRows<StoredCase>(deps.clickhouse, q.latestFor(keys.slice(i, i + LATEST_SLICE)), 'read cases');
      for (const r of rows) latest.set(`${r.rule_id}|${r.entity_type}|${r.entity_id}`, fromStored(r));
    }
    return latest;
  }

  return {
    /**
     * Applies rule hits: one case per (rule, entity) while it is open or acknowledged, or
     * resolved less than the rule's cooldown ago; further hits update it. Returns what changed.
     */
    async applyHits(hits: readonly Hit[], nowMs: number): Promise<{ opened: Case[]; updated: Case[] }> {
      const latest = await latestFor(hits.map((h) => [h.ruleId, h.entityType, h.entityId]));
      const { opened, updated } = decideCases(hits, latest, nowMs);
      await write([...opened, ...updated].map((c) => ({ c, version: nowMs, changedBy: 'detector', note: '' })));
      return { opened, updated };
    },

    /** Changes a case's status (support acknowledges or resolves it), recorded with who and why. */
    async setStatus(caseId: string, status: CaseStatus, who: string, note: string, nowMs: number): Promise<Case | null> {
      const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(caseId), 'read case');
      if (rows.length === 0) return null;
      const next: Case = { ...fromStored(rows[0]!), status, updated_at: toDateTimeText(nowMs) };
      await write([{ c: next, version: nowMs, changedBy: who, note }]);
      return next;
    },

    async list(filter: CaseFilter): Promise<Case[]> {
      return (await queryRows<StoredCase>(deps.clickhouse, q.list(filter), 'list cases')).map(fromStored);
    },

    async get(caseId: string): Promise<Case | null> {
      const rows = await queryRows<StoredCase>(deps.clickhouse, q.byId(caseId), 'read case');
      return rows[0] ? fromStored(rows[0]) : null;
    },

    async history(caseId: string): Promise<{ version: string; status: string; updated_at: string; hit_count: number; changed_by: string; note: string }[]> {
      return queryRows(deps.clickhouse, q.history(caseId), 'case history');
    },
  };
}
export type CaseStore = ReturnType<typeof createCaseStore>;
