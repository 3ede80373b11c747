import type { EntityType } from '../rules/schema.ts';

/** Entity types whose features come from their own events; channel and merchant are aggregated in SQL. */
export const EVENT_ENTITIES = ['ip', 'device', 'user', 'order'] as const;
export type EventEntity = (typeof EVENT_ENTITIES)[number];

/** The column of an event (and of a new-key row, positions.ts newKeysQuery) holding its key of each type. */
export const TOUCHED_COLUMN: Record<EventEntity, 'ip' | 'device_id' | 'user_id' | 'order_id'> = {
  ip: 'ip',
  device: 'device_id',
  user: 'user_id',
  order: 'order_id',
};

/** Entity types whose features describe the rest of the traffic an entity is part of (context.ts). */
export const CONTEXT_ENTITIES = ['channel', 'merchant'] as const satisfies readonly EntityType[];
