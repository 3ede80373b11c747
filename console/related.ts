import type { Case, CaseStore } from '../cases/index.ts';
import { factsRead } from '../rules/catalog.ts';
import { windowMs, type RuleSet, type WindowName } from '../rules/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { sql } from '../storage/sql.ts';
import { entityEventsSource } from './timeline.ts';

/** The entity types whose sharing makes cases related: the same IP, device or user. */
const SHARED = ['ip', 'device', 'user'] as const;
type Shared = (typeof SHARED)[number];
const SHARED_COLUMNS: Record<Shared, string> = { ip: 'ip', device: 'device_id', user: 'user_id' };

/** At most this many IPs, devices and users seen with an entity are followed: a page stays bounded. */
export const MAX_SHARED = 300;
/** A rule whose window cannot be told (unknown rule, no windowed feature): the timeline's day. */
export const DEFAULT_WINDOW_MS = 86_400_000;

/** Rule id -> its window: the longest window of the features its conditions read (through derived facts). */
export function ruleWindows(ruleSet: RuleSet): Map<string, number> {
  return new Map(
    ruleSet.rules.map((r) => {
      let longest = 0;
      for (const id of factsRead(ruleSet.catalog, r.facts)) {
        const info = ruleSet.catalog.facts.get(id);
        const window = info?.kind === 'feature' ? (info.def as { window?: WindowName }).window : undefined;
        if (window) longest = Math.max(longest, windowMs[window]);
      }
      return [r.id, longest || DEFAULT_WINDOW_MS];
    }),
  );
}

/**
 * The IPs, devices and users seen with an entity between `fromMs` and `toMs` (the rule's window
 * before the case opened, to its last update), or null for an entity type without a column.
 */
export function sharedEntitiesQuery(database: string, entityType: string, entityId: string, fromMs: number, toMs: number): string | null {
  const source = entityEventsSource(database, entityType, entityId, new Date(fromMs));
  if (!source) return null;
  return sql`SELECT DISTINCT ip, device_id, user_id FROM ${source} AND occurred_at <= ${new Date(toMs)} LIMIT ${MAX_SHARED}`;
}

/** A case of an entity that shared an IP, device or user with the case's entity. */
export type RelatedCase = Case & { shared: string };

const at = (text: string) => Date.parse(text.replace(' ', 'T') + 'Z');

/**
 * Cases of the IPs, devices and users seen with the case's entity in the rule's window (the
 * same entity's other cases are `related`, not here). Newest first, at most 100.
 */
export async function readRelatedByShared(
  deps: { clickhouse: ClickHouseClient; database: string; cases: Pick<CaseStore, 'ofEntities'> },
  c: Case,
  windowMsOfRule: number,
): Promise<RelatedCase[]> {
  const query = sharedEntitiesQuery(deps.database, c.entity_type, c.entity_id, at(c.opened_at) - windowMsOfRule, at(c.updated_at) + 1_000);
  if (!query) return [];
  const rows = await queryRows<{ ip: string | null; device_id: string | null; user_id: string | null }>(deps.clickhouse, query, 'shared entities');
  const found = await Promise.all(
    SHARED.map(async (type) => {
      const ids = [...new Set(rows.map((r) => r[SHARED_COLUMNS[type] as keyof typeof r]).filter((v): v is string => !!v))].filter(
        (id) => !(type === c.entity_type && id === c.entity_id),
      );
      return (await deps.cases.ofEntities(type, ids)).map((r) => ({ ...r, shared: `${type === 'ip' ? 'IP' : type} ${r.entity_id}` }));
    }),
  );
  return found
    .flat()
    .sort((a, b) => (a.opened_at < b.opened_at ? 1 : a.opened_at > b.opened_at ? -1 : 0))
    .slice(0, 100);
}
