import type { Producer } from 'kafkajs';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from '../analytics/jobs.ts';
import { readCursorQuery, writeCursorQuery } from '../analytics/rate-items.ts';
import { readPolicy } from '../analytics/retry-policy.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { command, insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { commandMessage, readSwitch } from './automation.ts';
import { commandIdFor, type PlannedCommand } from './plan.ts';
import { AUTOMATION_ACTOR, automationQueries, issuedCommandRow } from './queries.ts';

/**
 * The article's scheduled re-check, a scheduled job like the analytics ones (run every minute
 * on the jobs leader, recorded in job_runs): a requery_status for the attempts still
 * processing REQUERY_AFTER after their first report, oldest first, at most
 * REQUERY_MAX_PER_MINUTE (half that in the peak hours the retry-policy job found, where the
 * platform is already struggling), and never for one attempt more often than every
 * REQUERY_AFTER. Commands carry no case; their answers are settled by the automation pass of
 * the detection leader, which looks at every published command.
 */
export const REQUERY_JOB = 'requery';

export interface RequeryDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  config: Pick<Config, 'automation' | 'requeryAfterMs' | 'requeryMaxPerMinute' | 'commandsTopic'>;
  logger: Logger;
}

/** The most re-queries of one run at `hourUtc`: fewer in a peak hour. */
export function requeryLimit(maxPerMinute: number, hourUtc: number, peakHours: ReadonlySet<number>): number {
  return peakHours.has(hourUtc) ? Math.max(1, Math.floor(maxPerMinute / 2)) : maxPerMinute;
}

/** One run at `nowMs`: what it issued (or recorded, in dry-run). */
export async function runRequery(deps: RequeryDeps, nowMs: number): Promise<{ issued: number; limit: number; peak: boolean; skipped?: string }> {
  const mode = deps.config.automation;
  if (mode === 'off') return { issued: 0, limit: 0, peak: false, skipped: 'AUTOMATION=off' };
  if ((await readSwitch(deps.clickhouse, deps.database)).paused) return { issued: 0, limit: 0, peak: false, skipped: 'paused' };
  const q = automationQueries(deps.database);
  const peakHours = new Set((await readPolicy(deps)).flatMap((e) => e.peakHours));
  const hour = new Date(nowMs).getUTCHours();
  const limit = requeryLimit(deps.config.requeryMaxPerMinute, hour, peakHours);
  const nowSec = Math.floor(nowMs / 1000);
  const afterSec = Math.floor(deps.config.requeryAfterMs / 1000);
  const asked = new Set(
    (await queryRows<{ order_id: string; attempt: number }>(deps.clickhouse, q.requeriedSince(nowSec - afterSec), 'attempts re-queried')).map(keyOf),
  );
  const found = await findStillProcessing(deps, q, { nowSec, afterSec, limit, asked });
  const due = pickDue(found.candidates, asked, limit, found.until);
  if (due.length === 0) {
    await found.commit(due);
    return { issued: 0, limit, peak: peakHours.has(hour), skipped: undefined };
  }
  // One id per attempt and REQUERY_AFTER period: a repeated run in the same period sends the same command.
  const period = Math.floor(nowMs / deps.config.requeryAfterMs);
  const planned: PlannedCommand[] = due.map((a) => ({
    command_id: commandIdFor('requery_status', { caseId: '', orderId: a.order_id, attempt: Number(a.attempt), round: period }),
    type: 'requery_status',
    case_id: '',
    rule_id: '',
    order_id: a.order_id,
    attempt: Number(a.attempt),
    ...(a.transaction_id ? { transaction_id: a.transaction_id } : {}),
    reason: `Scheduled re-check: attempt ${a.attempt} of order ${a.order_id} is still processing.`,
  }));
  const expiresAtMs = nowMs + deps.config.requeryAfterMs;
  await insertRows(
    deps.clickhouse,
    ident(deps.database, 'command_versions').text,
    planned.map((p) => issuedCommandRow(p, mode, nowMs, expiresAtMs, REQUERY_JOB)),
  );
  if (mode === 'on')
    await deps.producer.send({
      topic: deps.config.commandsTopic,
      acks: -1,
      messages: planned.map((p) => ({ key: p.order_id!, value: JSON.stringify(commandMessage(p, nowMs, expiresAtMs)) })),
    });
  // Moved only once the commands are stored (and sent): a failed run looks at the same reports again.
  const left = await found.commit(due);
  deps.logger.info(mode === 'on' ? 're-queried attempts still processing' : 'would have re-queried (dry-run)', {
    count: planned.length,
    limit,
    left_this_run: left,
    by: AUTOMATION_ACTOR,
  });
  return { issued: planned.length, limit, peak: peakHours.has(hour) };
}

/** An attempt still processing, as the requery job's reads return it. */
export interface Stuck {
  order_id: string;
  attempt: number;
  transaction_id: string;
  began: number;
}
const keyOf = (a: { order_id: string; attempt: number }) => `${a.order_id}|${Number(a.attempt)}`;
/** Oldest first report first, then by order and attempt: the order requery_waiting is read in. */
/**
 * The order of the waiting list's read (began, order_id, attempt), with order ids compared as
 * ClickHouse compares strings: by their UTF-8 bytes. JavaScript's `<` compares UTF-16 code units,
 * which puts a character above U+FFFF (a surrogate pair) before U+E000-U+FFFF.
 */
export const oldestFirst = (a: Stuck, b: Stuck): number =>
  Number(a.began) - Number(b.began) ||
  (a.order_id === b.order_id ? 0 : Buffer.compare(Buffer.from(a.order_id, 'utf8'), Buffer.from(b.order_id, 'utf8'))) ||
  Number(a.attempt) - Number(b.attempt);

/**
 * The attempts a run asks about: the first `limit` of `candidates` (oldest first) not asked within
 * REQUERY_AFTER, and none after `until`, the last waiting attempt the run read when the list may
 * hold more after it: those unread ones are older than any candidate after `until`, so they go first.
 */
export function pickDue(candidates: readonly Stuck[], asked: ReadonlySet<string>, limit: number, until: Stuck | null): Stuck[] {
  return candidates.filter((a) => !asked.has(keyOf(a)) && (until === null || oldestFirst(a, until) <= 0)).slice(0, limit);
}

/** The requery job's place in analytics_cursors: covered_from holds how far its scan by time has looked, seen_to the change log. */
const CURSOR_JOB = 'requery';
/**
 * How far back the late-report read starts before the last run's server time: an insert's rows
 * carry the server time its INSERT began, and a big insert on a busy server becomes visible well
 * after that. A miss here would be for good (the scan by time is past the report), so the margin
 * is wide, and the full-day scan each hour (FULL_SCAN_EVERY_SEC) catches anything later still.
 */
export const REQUERY_CHANGES_OVERLAP_SECONDS = 120;
/** A run reads the whole day again when the last full read is this old. */
const FULL_SCAN_EVERY_SEC = 3_600;
/** Orders per key look-up: one statement stays small whatever the number. */
const ORDER_SLICE = 2_000;
/**
 * The most attempts one scan by time returns (oldest first); when it returns this many, the next
 * run scans on from the last one's first report, so a day of stuck attempts is taken in pieces.
 */
export const REQUERY_SCAN_ROWS = 10_000;

/**
 * The attempts still processing REQUERY_AFTER after their first report, within the last day,
 * oldest first; read so that a run's events follow what is new, not the day's history:
 * - by time, the first reports from where the last run's scan stopped up to REQUERY_AFTER ago
 *   (the whole day on the first run, after a pause of a day, once an hour, or when the cursor
 *   makes no sense), at most REQUERY_SCAN_ROWS of them; the hourly whole-day read never moves the
 *   scan back;
 * - by key: the oldest of the attempts earlier runs left waiting (requery_waiting, a few more
 *   than the limit, checked again by key; finding them groups the list's rows of the last two
 *   days, one small row per attempt left or taken off, so that read follows the backlog, not the
 *   events), the orders asked about before whose last ask is REQUERY_AFTER
 *   old (asked again while still processing), and the orders with a report stored since the last
 *   run that occurred before the scan's start (late events).
 * `commit(due)`, given the attempts this run asks about, keeps every other one found in
 * requery_waiting, takes the ones asked about or settled off it, and moves the cursor on: the
 * scan never starts again at an attempt the limit left (it did before, so while more attempts
 * were stuck than the limit allows, every run re-read all the events since the oldest of them).
 * It returns how many of this run's candidates it left waiting (not the size of the list).
 * `until`: when the run read as many waiting attempts as it asked for, the last of them; the list
 * may hold more after it, so nothing newer may be asked about this run (see pickDue).
 */
async function findStillProcessing(
  deps: RequeryDeps,
  q: ReturnType<typeof automationQueries>,
  run: { nowSec: number; afterSec: number; limit: number; asked: ReadonlySet<string> },
): Promise<{ candidates: Stuck[]; until: Stuck | null; commit: (due: readonly Stuck[]) => Promise<number> }> {
  const { nowSec, afterSec, limit, asked } = run;
  const dayAgo = nowSec - 86_400;
  const cutoff = nowSec - afterSec;
  const [stored] = await queryRows<{ seen_to: number; covered_from: number; history_from: number; version: number | string }>(
    deps.clickhouse,
    readCursorQuery(deps.database, CURSOR_JOB),
    'requery cursor',
  );
  const serverNow = Number((await queryRows<{ now: number }>(deps.clickhouse, q.serverNow(), 'server clock'))[0]!.now);
  const scanned = stored ? Number(stored.covered_from) : 0;
  // history_from holds when the last full-day read ran.
  const lastFull = stored ? Number(stored.history_from) : 0;
  const incremental = scanned >= dayAgo && scanned <= cutoff && lastFull >= nowSec - FULL_SCAN_EVERY_SEC && lastFull <= nowSec;
  const scanFrom = incremental ? scanned : dayAgo;
  // Where the scans had reached, kept through the hourly full read (not after a pause of a day).
  const keptScan = !incremental && stored && scanned >= dayAgo && scanned <= cutoff ? scanned : null;

  const fresh = await queryRows<Stuck>(deps.clickhouse, q.stillProcessing(scanFrom, cutoff, REQUERY_SCAN_ROWS, !incremental), 'attempts still processing');
  // The oldest waiting ones, enough to fill the limit when some were asked about or have settled.
  const frontSize = 2 * limit + asked.size + 100;
  const front = await queryRows<Stuck & { v: number | string }>(deps.clickhouse, q.waitingOldest(dayAgo, frontSize), 'attempts left waiting');
  const orders = new Set(front.map((a) => a.order_id));
  // By key as well on the hourly whole-day read when it keeps the scan where it was: past its
  // 10,000 attempts it does not reach what was asked before or reported late before that point.
  const lateBefore = incremental ? scanFrom : keptScan;
  if (lateBefore !== null) {
    for (const r of await queryRows<{ order_id: string }>(deps.clickhouse, q.askedBefore(dayAgo, cutoff + 1), 'attempts asked before')) orders.add(r.order_id);
    const seenFrom = Math.min(Number(stored!.seen_to), serverNow) - REQUERY_CHANGES_OVERLAP_SECONDS;
    for (const r of await queryRows<{ order_id: string }>(deps.clickhouse, q.lateOrders(seenFrom, dayAgo, lateBefore), 'late reports')) orders.add(r.order_id);
  }
  const byKey = new Map(fresh.map((a) => [keyOf(a), a]));
  const all = [...orders];
  for (let i = 0; i < all.length; i += ORDER_SLICE) {
    const rows = await queryRows<Stuck>(deps.clickhouse, q.stillProcessingOf(all.slice(i, i + ORDER_SLICE), dayAgo, cutoff), 'attempts still processing');
    for (const a of rows) if (!byKey.has(keyOf(a)) || Number(byKey.get(keyOf(a))!.began) > Number(a.began)) byKey.set(keyOf(a), a);
  }
  const candidates = [...byKey.values()].sort(oldestFirst);
  return {
    candidates,
    until: front.length >= frontSize ? front.at(-1)! : null,
    async commit(due) {
      // After the stored versions even when this process's clock is behind the last writer's.
      const version = Math.max(Date.now(), stored ? Number(stored.version) + 1 : 0, ...front.map((a) => Number(a.v) + 1));
      const asking = new Set(due.map(keyOf));
      const left = candidates.filter((a) => !asked.has(keyOf(a)) && !asking.has(keyOf(a)));
      const leftKeys = new Set(left.map(keyOf));
      const had = new Map(front.map((a) => [keyOf(a), a]));
      const row = (a: Stuck, waiting: 0 | 1) => ({
        order_id: a.order_id,
        attempt: Number(a.attempt),
        transaction_id: a.transaction_id,
        began: toDateTimeText(Number(a.began) * 1000),
        waiting,
        version,
      });
      const changes = [
        // Left now and not already waiting as it is.
        ...left
          .filter((a) => {
            const before = had.get(keyOf(a));
            return !before || Number(before.began) !== Number(a.began) || before.transaction_id !== a.transaction_id;
          })
          .map((a) => row(a, 1)),
        // Waiting before, and now asked about or settled: off the list (its row in the same day's partition).
        ...front.filter((a) => !leftKeys.has(keyOf(a))).map((a) => row(a, 0)),
      ];
      await insertRows(deps.clickhouse, ident(deps.database, 'requery_waiting').text, changes, 'keep the attempts left waiting');
      // The scan moves on: to REQUERY_AFTER ago, or to the last attempt it returned when it returned as many as it may.
      let scannedTo = cutoff;
      if (fresh.length >= REQUERY_SCAN_ROWS) {
        // More than the scan may return: the next one goes on from the last one it returned, or
        // from the next second when all of them share its first, so the scan cannot stall on it;
        // then the attempts of that second past the 10,000 are not read by time again (a known
        // limit: 10,000 attempts first reported in one second).
        const last = Number(fresh.at(-1)!.began);
        scannedTo = last > scanFrom ? last : scanFrom + 1;
        // The hourly full read must not take back what the scans before it covered: the attempts
        // they found are waiting or asked, and walking the day again would re-read it every run.
        if (keptScan !== null) scannedTo = Math.max(scannedTo, keptScan);
      }
      const historyFromSec = incremental ? lastFull : nowSec;
      const cursor = { seenToSec: serverNow, coveredFromSec: scannedTo, historyFromSec, writtenVersion: 0, serverAtSec: serverNow, serverUptime: 0 };
      await command(deps.clickhouse, writeCursorQuery(deps.database, CURSOR_JOB, { ...cursor, version }), 'move the requery cursor');
      return left.length;
    },
  };
}

/** What the scheduled requery job needs beyond AnalyticsDeps: a producer for the commands topic and the settings. */
export interface RequeryJobDeps extends AnalyticsDeps {
  /** Without it (a process that cannot publish commands) the job does nothing. */
  commands?: { producer: Pick<Producer, 'send'>; config: RequeryDeps['config'] };
}

/**
 * One recorded run of the requery job at `now`: its window is the first reports it looks at
 * (the day before `now`, up to REQUERY_AFTER ago), its rows the commands it issued (or recorded,
 * in dry-run). With AUTOMATION=off or paused it records a run that issued nothing.
 */
export async function runRequeryJob(deps: RequeryJobDeps, now: Date): Promise<JobRun | null> {
  const commands = deps.commands;
  if (!commands) return null;
  const window = { from: new Date(now.getTime() - 86_400_000), to: new Date(now.getTime() - commands.config.requeryAfterMs) };
  return runJob(deps, REQUERY_JOB, window, async () => {
    const r = await runRequery({ ...deps, producer: commands.producer, config: commands.config }, now.getTime());
    if (r.skipped) deps.logger.debug('requery: nothing sent', { why: r.skipped });
    return r.issued;
  });
}

export const requeryScheduledJob: ScheduledJob<RequeryJobDeps> = { name: REQUERY_JOB, cron: '* * * * *', run: (deps, now) => runRequeryJob(deps, now) };
