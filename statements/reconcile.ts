import { createHash } from 'node:crypto';
import { insertRows, queryRows } from '../storage/clickhouse.ts';
import { insertTsv, insertTsvText, queryTsvMap, tsvEscape, type TsvValue } from '../storage/tsv.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import type { StatementDeps } from './import.ts';
import { reconcile, type Break, type BreakKind, type Match, type OurAttempt, type OurRefund, type StatementEntry } from './match.ts';
import { attemptsQuery, nearbyLinesQuery, periodLinesQuery, periodStateQuery, refundsQuery, type PeriodKey } from './reconcile-queries.ts';
import type { Period } from './types.ts';

/** Wait this long after a period ends before reconciling it, for attempts near the cut. @default 30 minutes (STATEMENT_GRACE) */
export const DEFAULT_STATEMENT_GRACE_MS = 30 * 60_000;

export interface PeriodRun {
  channel: string;
  period: Period;
  version: number;
  lines: number;
  attempts: number;
  refunds: number;
  matched: number;
  breaks: Record<BreakKind, number>;
  durationMs: number;
  /** Where the time went: reading from ClickHouse, deciding, writing the results. */
  phasesMs: { read: number; decide: number; write: number };
}

export type PeriodOutcome = { status: 'reconciled'; run: PeriodRun } | { status: 'open'; channel: string; period: Period; closesAt: Date };

type Row = Record<string, unknown>;
const INSERT_CHUNK = 200_000;

/**
 * Reconciles one channel's statement period against our records, once the period has closed and
 * the grace has passed: reads the period's statement lines and our attempts and refunds of the
 * period widened by the grace on both sides, decides with `reconcile`, and writes the matches,
 * the breaks and a run row under one new version (readers keep the latest, so a re-run replaces
 * the period's results). A period still open (or within its grace) is left alone.
 */
export async function reconcilePeriod(deps: StatementDeps, key: PeriodKey, options: { graceMs: number; now: Date }): Promise<PeriodOutcome> {
  const { channel, period } = key;
  const closesAt = new Date(period.toMs + options.graceMs);
  if (closesAt.getTime() > options.now.getTime()) return { status: 'open', channel, period, closesAt };
  const started = Date.now();
  const window = { fromMs: period.fromMs - options.graceMs, toMs: period.toMs + options.graceMs };
  // TabSeparated: at a million rows each, it reads in half the time JSON takes.
  const [lineRows, attempts, refunds, nearbyRows] = await Promise.all([
    queryTsvMap(deps.clickhouse, periodLinesQuery(deps.database, key), 'read statement lines', toEntry),
    queryTsvMap(deps.clickhouse, attemptsQuery(deps.database, channel, window), 'read attempts for reconciliation', toAttempt),
    queryTsvMap(deps.clickhouse, refundsQuery(deps.database, channel, window), 'read refunds for reconciliation', toRefund),
    queryTsvMap(deps.clickhouse, nearbyLinesQuery(deps.database, key, options.graceMs), 'read neighbouring periods lines', toEntry),
  ]);
  const lines = uniqueLines(lineRows);
  const readMs = Date.now() - started;
  const result = reconcile({ period, lines, attempts, refunds, nearby: uniqueLines(nearbyRows) });
  const decidedAt = Date.now();
  // Unique per run and increasing, also for two runs within one millisecond.
  const version = Date.now() * 1000 + Math.floor(Math.random() * 1000);
  // When the run happened (the job compares it with files' import times), not the `now` it judged by.
  const computedAt = toDateTimeText(Date.now());
  const head = [channel, toDateTimeText(period.fromMs), toDateTimeText(period.toMs), version] as const;
  const breakHead = [...head, computedAt] as const;
  // Two inserts in flight at most: the server parses one chunk while Node builds the next, and
  // more would only compete for the same two cores.
  const writes: (() => Promise<void>)[] = [];
  // Matches are most of what a run writes (a million at a time): their text is built directly,
  // the constant head escaped once, instead of an array per row and an escape per cell.
  const matchHead = head.map(tsvEscape).join('\t');
  for (let i = 0; i < result.matches.length; i += INSERT_CHUNK) {
    const slice = result.matches.slice(i, i + INSERT_CHUNK);
    writes.push(() =>
      insertTsvText(
        deps.clickhouse,
        ident(deps.database, 'statement_matches').text,
        MATCH_COLUMNS,
        () => matchText(matchHead, slice),
        'write statement matches',
      ),
    );
  }
  for (let i = 0; i < result.breaks.length; i += INSERT_CHUNK) {
    const slice = result.breaks.slice(i, i + INSERT_CHUNK);
    writes.push(() =>
      insertTsv(
        deps.clickhouse,
        ident(deps.database, 'statement_breaks').text,
        BREAK_COLUMNS,
        slice.map((b) => {
          const r = breakRow(b);
          return [...breakHead, ...BREAK_FIELDS.map((c) => r[c] as TsvValue)];
        }),
        'write statement breaks',
      ),
    );
  }
  await inParallel(writes, 2);
  // The run row last: a run cut short leaves no run, so readers keep the previous one.
  await insertRows(
    deps.clickhouse,
    ident(deps.database, 'statement_runs').text,
    [
      {
        channel,
        period_from: toDateTimeText(period.fromMs),
        period_to: toDateTimeText(period.toMs),
        version,
        computed_at: computedAt,
        window_from: toDateTimeText(window.fromMs),
        window_to: toDateTimeText(window.toMs),
        lines: lines.length,
        attempts: attempts.length,
        refunds: refunds.length,
        matched: result.matches.length,
        breaks: result.breaks.length,
      },
    ],
    'record statement run',
  );
  const breaks = Object.fromEntries(
    ['charged_not_recorded', 'recorded_not_settled', 'amount_mismatch', 'currency_mismatch', 'duplicate_settlement', 'refund_mismatch', 'ambiguous'].map(
      (k) => [k, 0],
    ),
  ) as Record<BreakKind, number>;
  for (const b of result.breaks) breaks[b.kind]++;
  const run: PeriodRun = {
    channel,
    period,
    version,
    lines: lines.length,
    attempts: attempts.length,
    refunds: refunds.length,
    matched: result.matches.length,
    breaks,
    durationMs: Date.now() - started,
    phasesMs: { read: readMs, decide: decidedAt - started - readMs, write: Date.now() - decidedAt },
  };
  deps.logger.info('statement period reconciled', {
    channel,
    period_from: new Date(period.fromMs).toISOString(),
    period_to: new Date(period.toMs).toISOString(),
    lines: run.lines,
    matched: run.matched,
    breaks: result.breaks.length,
    duration_ms: run.durationMs,
  });
  return { status: 'reconciled', run };
}

/**
 * The periods with a file imported since their last run (or never run), whose period ended after
 * `sinceMs`: what the scheduled job reconciles (those still within their grace are skipped by
 * reconcilePeriod and picked up by a later run). A period whose last run found breaks is run again
 * when a neighbouring period of its channel (one ending where it starts, or starting where it
 * ends) gets a file later: a charge near the cut may be settled on the neighbour's statement.
 */
export async function periodsToReconcile(deps: StatementDeps, sinceMs: number): Promise<PeriodKey[]> {
  const rows = await queryRows<Row>(deps.clickhouse, periodStateQuery(deps.database, sinceMs), 'read statement periods');
  return rows
    .filter((r) => {
      const run = Number(r.run_s);
      if (run === 0 || run < Number(r.imported_s)) return true;
      if (Number(r.run_breaks) === 0) return false;
      return rows.some(
        (q) => q.channel === r.channel && (Number(q.to_s) === Number(r.from_s) || Number(q.from_s) === Number(r.to_s)) && Number(q.imported_s) >= run,
      );
    })
    .map((r) => ({ channel: String(r.channel), period: { fromMs: Number(r.from_s) * 1000, toMs: Number(r.to_s) * 1000 } }));
}

type Cells = (string | null)[];

/** Runs the tasks with at most `limit` in flight. */
async function inParallel(tasks: readonly (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

// A line stored twice (an insert retried after a lost answer) counts once. Line numbers per file,
// not a string per line: a million keys of 70 characters were a good part of the decide's garbage.
function uniqueLines(lines: StatementEntry[]): StatementEntry[] {
  const seen = new Map<string, Set<number>>();
  return lines.filter((l) => {
    let file = seen.get(l.fileHash);
    if (!file) seen.set(l.fileHash, (file = new Set()));
    if (file.has(l.line)) return false;
    file.add(l.line);
    return true;
  });
}

// Columns in the order the queries of reconcile-queries.ts select them.
const toEntry = (r: Cells): StatementEntry => ({
  fileHash: r[0]!,
  line: Number(r[1]),
  type: r[2] === 'refund' ? 'refund' : 'payment',
  transactionId: r[3]!,
  orderId: r[4]!,
  amountMinor: Number(r[5]),
  currency: r[6]!,
  occurredAtMs: Number(r[7]),
});

const toAttempt = (r: Cells): OurAttempt => ({
  orderId: r[0]!,
  attempt: Number(r[1]),
  status: r[2] as OurAttempt['status'],
  amountMinor: Number(r[3]),
  currency: r[4]!,
  transactionId: r[5]!,
  lastAtMs: Number(r[6]),
});

const toRefund = (r: Cells): OurRefund => ({
  eventId: r[0]!,
  orderId: r[1]!,
  transactionId: r[2]!,
  amountMinor: Number(r[3]),
  currency: r[4]!,
  occurredAtMs: Number(r[5]),
});

const MATCH_COLUMNS = [
  'channel',
  'period_from',
  'period_to',
  'version',
  'file_hash',
  'line',
  'type',
  'matched_by',
  'transaction_id',
  'order_id',
  'attempt',
  'refund_event_id',
  'amount_minor',
  'currency',
];

/** The TabSeparated text of matches, in slices of 50,000 lines; `head` is the escaped run columns. */
export function* matchText(head: string, matches: readonly Match[]): Generator<string> {
  for (let i = 0; i < matches.length; i += 50_000) {
    let out = '';
    for (let j = i; j < Math.min(matches.length, i + 50_000); j++) {
      const m = matches[j]!;
      const l = m.line;
      out +=
        `${head}\t${tsvEscape(l.fileHash)}\t${l.line}\t${tsvEscape(l.type)}\t${m.by}\t${tsvEscape(l.transactionId)}\t${tsvEscape(l.orderId)}\t` +
        `${m.attempt?.attempt ?? 0}\t${tsvEscape(m.refund?.eventId ?? '')}\t${l.amountMinor}\t${tsvEscape(l.currency)}\n`;
    }
    yield out;
  }
}

/** A match as a row of cells (the reference for matchText). */
export const matchRow = (m: Match): TsvValue[] => [
  m.line.fileHash,
  m.line.line,
  m.line.type,
  m.by,
  m.line.transactionId,
  m.line.orderId,
  m.attempt?.attempt ?? 0,
  m.refund?.eventId ?? '',
  m.line.amountMinor,
  m.line.currency,
];

const BREAK_FIELDS = [
  'break_id',
  'kind',
  'detail',
  'order_id',
  'transaction_id',
  'has_statement',
  'statement_file_hash',
  'statement_line',
  'statement_type',
  'statement_amount_minor',
  'statement_currency',
  'statement_occurred_at',
  'has_ours',
  'our_attempt',
  'our_status',
  'our_refund_event_id',
  'our_amount_minor',
  'our_currency',
  'our_occurred_at',
  'amount_at_stake_minor',
  'currency',
] as const;
const BREAK_COLUMNS = ['channel', 'period_from', 'period_to', 'version', 'computed_at', ...BREAK_FIELDS];

/** A break as a statement_breaks row; its id is derived from the kind and both sides. */
export function breakRow(b: Break): Row {
  const ours = b.attempt ?? b.refund;
  const ourTime = b.attempt?.lastAtMs ?? b.refund?.occurredAtMs ?? 0;
  const id = createHash('sha256')
    .update(JSON.stringify([b.kind, b.line?.fileHash ?? '', b.line?.line ?? 0, b.attempt?.orderId ?? '', b.attempt?.attempt ?? 0, b.refund?.eventId ?? '']))
    .digest('hex')
    .slice(0, 32);
  // What is at stake in the statement's currency where there is a statement side.
  const stake =
    b.kind === 'amount_mismatch' || (b.kind === 'refund_mismatch' && b.line && ours)
      ? Math.abs(b.line!.amountMinor - ours!.amountMinor)
      : (b.line?.amountMinor ?? ours?.amountMinor ?? 0);
  return {
    break_id: id,
    kind: b.kind,
    detail: b.detail,
    order_id: b.line?.orderId || ours?.orderId || '',
    transaction_id: b.line?.transactionId || ours?.transactionId || '',
    has_statement: b.line ? 1 : 0,
    statement_file_hash: b.line?.fileHash ?? '',
    statement_line: b.line?.line ?? 0,
    statement_type: b.line?.type ?? '',
    statement_amount_minor: b.line?.amountMinor ?? 0,
    statement_currency: b.line?.currency ?? '',
    statement_occurred_at: toDateTimeText(b.line?.occurredAtMs ?? 0),
    has_ours: ours ? 1 : 0,
    our_attempt: b.attempt?.attempt ?? 0,
    our_status: b.attempt?.status ?? (b.refund ? 'succeeded' : ''),
    our_refund_event_id: b.refund?.eventId ?? '',
    our_amount_minor: ours?.amountMinor ?? 0,
    our_currency: ours?.currency ?? '',
    our_occurred_at: toDateTimeText(ourTime),
    amount_at_stake_minor: stake,
    currency: b.line?.currency || ours?.currency || '',
  };
}
