import type { CaseStore } from '../cases/index.ts';
import type { Logger } from '../log/index.ts';
import type { RuleSet } from '../rules/index.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import type { ClickHouseHttp } from '../storage/http.ts';

export interface DetectorDeps {
  clickhouse: ClickHouseClient;
  http: ClickHouseHttp;
  database: string;
  ruleSet: RuleSet;
  /**
   * Where hits become cases. With `unresolvedOf` and `resolveBySystem` (the live case store),
   * cases whose rule's resolve_when holds are also resolved by the system (case-resolver.ts).
   */
  cases: Pick<CaseStore, 'applyHits'> & Partial<Pick<CaseStore, 'unresolvedOf' | 'resolveBySystem'>>;
  logger: Logger;
  /** Only the elected instance detects; the others idle. */
  isLeader: () => boolean;
  /** How often a tick starts. @default 250 */
  tickMs?: number;
  /** How far back a new leader looks for entities to evaluate. @default 10 minutes */
  startLookbackMs?: number;
  now?: () => number;
  /**
   * Limits every read to rows written by this time (epoch seconds) at the tick's `now`: a
   * backtest replays history as the live ticks saw it. Live detection reads everything.
   */
  writtenBy?: (nowMs: number) => number;
  /**
   * Baselines from history (the analytics `baselines` job), keyed like context facts
   * (`channel|alipay`); refreshed with the context. Without it, rules use the catalog defaults.
   */
  baselines?: (nowMs: number) => Promise<Map<string, Record<string, number>>>;
  /** Rows written before this time (epoch seconds) are never new to this detector (a backtest's start). */
  writtenFrom?: number;
  /**
   * At most this many new rows per tick (split over the partitions that have new rows); the rest
   * wait for the next tick. Bounds a tick's memory and time when detection has a backlog (a
   * restart after downtime, a burst). @default 50_000
   */
  maxRowsPerTick?: number;
}

export interface DetectorStats {
  /** Ticks completed as leader. */
  ticks: number;
  /** New rows taken by ticks. */
  rows: number;
  /** Whether the last tick left new rows for the next one (detection has a backlog). */
  behind: boolean;
  /** Entities that received events and passed the SQL screen (some rule may hold for them). */
  screened: number;
  /** Entities whose features were computed exactly and whose rules ran. */
  evaluated: number;
  hits: number;
  opened: number;
  updated: number;
  /** Cases resolved by the system because their rule's resolve_when held. */
  resolved: number;
  lastTickMs: number;
  /** Whether the live ticks screen by volume floor (a hot set is in place for every floored type), or every touched entity. */
  floorsReady: boolean;
  /** Entities screened by id because they were in the hot set or had enough new events (hot-sets.ts). */
  nearFloor: number;
  /** Touched entities near a floor not screened because they were parked (parked-keys.ts). */
  parkedSkips: number;
  /** Keys parked now. */
  parked: number;
}

/** The health of the detector's loop: a plain value, for `/healthz` and metrics. */
export interface DetectorStatus {
  /** Ticks completed since start, as leader or standing by. */
  ticks: number;
  /** Ticks failed in a row (0 after a completed one). */
  failedInARow: number;
  /** Why the last failed tick failed, and when (epoch ms); null while none has. */
  lastFailure: { reason: string; atMs: number } | null;
}
