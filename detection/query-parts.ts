import type { EventFilter } from '../rules/schema.ts';
import { ident, joinSql, sqlFragment, type SqlFragment } from '../storage/sql.ts';

/** ` AND ingested_at <= until` when rows are limited to those written by then (a backtest), else nothing. */
export function writtenBy(untilSec: number | undefined): SqlFragment {
  return untilSec === undefined ? sqlFragment`` : sqlFragment` AND ingested_at <= toDateTime(${untilSec}, 'UTC')`;
}

/** `type IN (...) AND status IN (...)` for a feature filter, or 1 when there is none. */
export function filterSql(filter: EventFilter | undefined): SqlFragment {
  const parts = Object.entries(filter ?? {}).map(([field, values]) => sqlFragment`${ident(field)} IN ${values as string[]}`);
  return parts.length ? joinSql(parts, ' AND ') : sqlFragment`1`;
}
