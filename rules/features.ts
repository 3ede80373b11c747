import { parseRfc3339, type PaymentEvent } from '../contract/index.ts';
import type { FactCatalog } from './catalog.ts';
import { entityKeyField, type EntityType, type EventFilter, type Feature, type WindowName } from './schema.ts';
import { isLater } from '../storage/event-order.ts';

/**
 * Reference semantics of features.json: computes a feature from a plain list of events.
 * It is the specification the streaming and ClickHouse implementations are tested against,
 * and what `rules test` uses for fixtures given as events. It scans its input, so callers
 * pass the events of one entity (or a small history), not a whole stream.
 */

export const windowMs: Readonly<Record<WindowName, number>> = Object.freeze({
  '1m': 60_000,
  '10m': 600_000,
  '15m': 900_000,
  '1h': 3_600_000,
  '24h': 86_400_000,
});

/** An event with its parsed event time. */
export interface TimedEvent {
  event: PaymentEvent;
  occurredAtMs: number;
}

/** What the one event order compares (storage/event-order.ts). */
const orderKey = (t: TimedEvent) => ({ occurredAtMs: t.occurredAtMs, status: t.event.status, eventId: t.event.event_id });

/** Pairs events with their event time; events whose occurred_at does not parse are dropped. */
export function timed(events: readonly PaymentEvent[]): TimedEvent[] {
  const out: TimedEvent[] = [];
  for (const event of events) {
    const at = parseRfc3339(event.occurred_at);
    if (at !== null) out.push({ event, occurredAtMs: at });
  }
  return out;
}

const fieldValue = (e: PaymentEvent, field: string): unknown => (e as Record<string, unknown>)[field];
const asList = (f: string | readonly string[] | undefined): readonly string[] => (f === undefined ? [] : typeof f === 'string' ? [f] : f);

/** The fields a feature aggregates over, as a list. */
export const fieldsOf = (f: Feature): readonly string[] => asList(f.field);

/** True when every field listed in the filter has one of its values. */
export function matches(e: PaymentEvent, filter: EventFilter | undefined): boolean {
  if (!filter) return true;
  for (const [field, allowed] of Object.entries(filter)) {
    const v = fieldValue(e, field);
    if (typeof v !== 'string' || !(allowed as string[]).includes(v)) return false;
  }
  return true;
}

/** The composite key of `fields`, or undefined when the event lacks one of them. */
function keyOf(e: PaymentEvent, fields: readonly string[]): string | undefined {
  const parts: unknown[] = [];
  for (const f of fields) {
    const v = fieldValue(e, f);
    if (v === undefined || v === null) return undefined;
    parts.push(v);
  }
  return JSON.stringify(parts);
}

function byKey(events: readonly TimedEvent[], fields: readonly string[]): Map<string, TimedEvent[]> {
  const groups = new Map<string, TimedEvent[]>();
  for (const t of events) {
    const k = keyOf(t.event, fields);
    if (k === undefined) continue;
    const list = groups.get(k);
    if (list) list.push(t);
    else groups.set(k, [t]);
  }
  return groups;
}

/** One aggregation over the window's events (deduplicated, not yet filtered). */
function aggregate(f: Feature, events: readonly TimedEvent[], nowMs: number): number {
  const fields = asList(f.field);
  const selected = events.filter((t) => matches(t.event, f.filter));
  switch (f.aggregation) {
    case 'count':
      return selected.length;
    case 'distinct_count':
      return byKey(selected, fields).size;
    case 'sum':
      return selected.reduce((s, t) => s + (Number(fieldValue(t.event, fields[0]!)) || 0), 0);
    case 'rate': {
      if (fields.length === 0) {
        return selected.length ? selected.filter((t) => matches(t.event, f.numerator)).length / selected.length : 0;
      }
      const keys = byKey(selected, fields);
      let hits = 0;
      for (const list of keys.values()) if (list.some((t) => matches(t.event, f.numerator))) hits++;
      return keys.size ? hits / keys.size : 0;
    }
    case 'followed_by': {
      // The first step comes from `filter`; the second may be any event of the key.
      let n = 0;
      for (const list of byKey(events, fields).values()) {
        const firsts = list.filter((t) => matches(t.event, f.filter)).map((t) => t.occurredAtMs);
        if (firsts.length === 0) continue;
        const earliest = Math.min(...firsts);
        if (list.some((t) => t.occurredAtMs > earliest && matches(t.event, f.followed_by))) n++;
      }
      return n;
    }
    case 'age': {
      let oldest = 0;
      for (const list of byKey(selected, fields).values()) {
        // The latest event in the one order every other part uses (storage/event-order.ts).
        let latest = list[0]!;
        for (const t of list) if (isLater(orderKey(t), orderKey(latest))) latest = t;
        if (!matches(latest.event, f.latest)) continue;
        const first = Math.min(...list.map((t) => t.occurredAtMs));
        oldest = Math.max(oldest, nowMs - first);
      }
      return oldest;
    }
  }
}

/**
 * The value of one feature for one entity at `nowMs`: events of the entity with
 * now - window < occurred_at <= now, each event_id once, filtered and aggregated (per
 * `group_by` group, keeping the largest).
 */
export function computeFeature(feature: Feature, entityId: string, events: readonly TimedEvent[], nowMs: number): number {
  const keyField = entityKeyField[feature.entity];
  const from = nowMs - windowMs[feature.window];
  const seen = new Set<string>();
  const inWindow: TimedEvent[] = [];
  for (const t of events) {
    if (t.occurredAtMs <= from || t.occurredAtMs > nowMs || fieldValue(t.event, keyField) !== entityId || seen.has(t.event.event_id)) continue;
    seen.add(t.event.event_id);
    inWindow.push(t);
  }
  const groupFields = asList(feature.group_by);
  if (groupFields.length === 0) return aggregate(feature, inWindow, nowMs);
  let best = 0;
  for (const group of byKey(inWindow, groupFields).values()) best = Math.max(best, aggregate(feature, group, nowMs));
  return best;
}

/** Which entities to compute facts for: the entity itself, plus its channel and merchant for context features. */
export interface FactScope {
  entity: EntityType;
  entityId: string;
  channel?: string;
  merchantId?: string;
}

/**
 * Every feature a rule about `scope.entity` can read, computed from `events` at `nowMs`:
 * the entity's own features and, when given, its channel's and merchant's. Baselines and
 * derived facts are not included (the evaluator completes them). With `only`, just the features
 * in it (the ones the rules in force read).
 */
export function computeFacts(
  catalog: FactCatalog,
  scope: FactScope,
  events: readonly TimedEvent[],
  nowMs: number,
  only?: ReadonlySet<string>,
): Record<string, number> {
  const ids: Partial<Record<EntityType, string>> = { [scope.entity]: scope.entityId };
  if (scope.channel !== undefined && ids.channel === undefined) ids.channel = scope.channel;
  if (scope.merchantId !== undefined && ids.merchant === undefined) ids.merchant = scope.merchantId;
  const out: Record<string, number> = {};
  for (const info of catalog.facts.values()) {
    if (info.kind !== 'feature' || (only && !only.has(info.id))) continue;
    const id = ids[info.entity];
    if (id !== undefined) out[info.id] = computeFeature(info.def, id, events, nowMs);
  }
  return out;
}
