import type { StatementBreakKind as BreakKind } from '../rules/schema.ts';
import type { Period } from './types.ts';

/**
 * Three-way reconciliation of one channel's statement period against what we recorded: pure, so
 * the job, the import command and tests decide alike. Every settled statement line and every
 * attempt we recorded as succeeded in the period ends in exactly one place: one match or one break.
 */

/** A settled statement line, as stored in statement_lines. */
export interface StatementEntry {
  fileHash: string;
  line: number;
  type: 'payment' | 'refund';
  transactionId: string;
  orderId: string;
  amountMinor: number;
  currency: string;
  occurredAtMs: number;
}

/** One of our payment attempts, with its latest status (analytics/DEFINITIONS.md). */
export interface OurAttempt {
  orderId: string;
  attempt: number;
  /** The transaction id of its latest event that has one ('' when none). */
  transactionId: string;
  status: 'processing' | 'succeeded' | 'failed' | 'timeout';
  amountMinor: number;
  currency: string;
  /** When its latest event occurred: for a succeeded attempt, when it succeeded. */
  lastAtMs: number;
}

/** One of our succeeded refunds (one per event_id). */
export interface OurRefund {
  eventId: string;
  orderId: string;
  transactionId: string;
  amountMinor: number;
  currency: string;
  occurredAtMs: number;
}

// One list of break kinds, shared with the rules' statement facts (rules/schema.ts).
export { statementBreakKinds as breakKinds, type StatementBreakKind as BreakKind } from '../rules/schema.ts';

export type MatchedBy = 'transaction_id' | 'order_amount' | 'order';

export interface Match {
  line: StatementEntry;
  attempt?: OurAttempt;
  refund?: OurRefund;
  by: MatchedBy;
}

export interface Break {
  kind: BreakKind;
  /** The statement's side, when the break has one. */
  line?: StatementEntry;
  /** Our side: the attempt or the refund, when the break has one. */
  attempt?: OurAttempt;
  refund?: OurRefund;
  /** What disagrees, in words (both values where there are two). */
  detail: string;
}

export interface ReconcileInput {
  period: Period;
  /** Settled lines of the period's statement files (any order). */
  lines: readonly StatementEntry[];
  /** Our attempts with an event in the period widened by the grace on both sides. */
  attempts: readonly OurAttempt[];
  /** Our succeeded refunds in the same widened window. */
  refunds: readonly OurRefund[];
  /**
   * Settled lines of the channel's neighbouring periods that occurred within the grace of this
   * period's cuts. Our clock and the platform's put an attempt near a cut on different days; such
   * an attempt settled across the cut is the neighbour's to match, not missing here.
   */
  nearby?: readonly StatementEntry[];
}

export interface ReconcileResult {
  matches: Match[];
  breaks: Break[];
}

// Files by hash, lines by number: grouped first so a million lines sort by number, not by string.
function inFileOrder(lines: readonly StatementEntry[]): StatementEntry[] {
  const files = group(lines, (l) => l.fileHash);
  return [...files.keys()].sort().flatMap((hash) => files.get(hash)!.sort((a, b) => a.line - b.line));
}
const inPeriod = (p: Period, ms: number) => ms >= p.fromMs && ms < p.toMs;
const sameMoney = (l: StatementEntry, o: { amountMinor: number; currency: string }) => l.amountMinor === o.amountMinor && l.currency === o.currency;

/**
 * Items by key ('' is no key) for look-ups: a key with one item (nearly all of them) keeps it
 * without an array, and `get` hands out a fresh array that dies young. At a million attempts the
 * arrays `group` keeps alive for the whole decision made the garbage collector the biggest cost.
 */
class Index<T extends object> {
  private readonly one = new Map<string, T>();
  private readonly many = new Map<string, T[]>();
  constructor(items: readonly T[], key: (t: T) => string) {
    for (const item of items) {
      const k = key(item);
      if (k === '') continue;
      const list = this.many.get(k);
      if (list) {
        list.push(item);
        continue;
      }
      const first = this.one.get(k);
      if (first === undefined) this.one.set(k, item);
      else {
        this.one.delete(k);
        this.many.set(k, [first, item]);
      }
    }
  }
  has(k: string): boolean {
    return this.one.has(k) || this.many.has(k);
  }
  get(k: string): readonly T[] | undefined {
    const one = this.one.get(k);
    return one !== undefined ? [one] : this.many.get(k);
  }
}

function group<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === '') continue;
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/**
 * Payments: a line goes to the attempt with its transaction id; else to the unique best attempt of
 * its order (same amount and currency, then succeeded first); two equally good candidates are
 * `ambiguous`, never guessed (the candidates are then accounted for by that break). The first line on an attempt is its settlement: a match, or
 * `charged_not_recorded` (our latest status is not succeeded), `currency_mismatch`,
 * `amount_mismatch`; every further line on it, or a charge on an order whose attempts are all
 * settled already, is a `duplicate_settlement`. A line with no attempt at all is
 * `charged_not_recorded`; an attempt that succeeded in the period without a line is
 * `recorded_not_settled`.
 *
 * Refunds: a line goes to one of our refunds with its transaction id, else of its order: same
 * amount and currency first (such refunds are interchangeable: the earliest is taken), else the
 * only one left, whose amount differs (`refund_mismatch`). Several different ones left are
 * `ambiguous`; none is `refund_mismatch` (the platform refunded, we did not record it), and so is
 * a refund of ours in the period that no line took.
 */
export function reconcile(input: ReconcileInput): ReconcileResult {
  const matches: Match[] = [];
  const breaks: Break[] = [];
  const lines = inFileOrder(input.lines);
  const nearby = input.nearby ?? [];
  reconcilePayments(
    input.period,
    lines.filter((l) => l.type === 'payment'),
    input.attempts,
    matches,
    breaks,
    settledAcross(nearby.filter((l) => l.type === 'payment')),
  );
  reconcileRefunds(
    input.period,
    lines.filter((l) => l.type === 'refund'),
    input.refunds,
    matches,
    breaks,
    settledAcross(nearby.filter((l) => l.type === 'refund')),
  );
  return { matches, breaks };
}

/**
 * Whether one of our attempts or refunds has a line in a neighbouring period: the same transaction
 * id, or (when either side has none) the same order, amount and currency.
 */
function settledAcross(
  nearby: readonly StatementEntry[],
): (ours: { transactionId: string; orderId: string; amountMinor: number; currency: string }) => boolean {
  if (nearby.length === 0) return () => false;
  const byTx = new Index(nearby, (l) => l.transactionId);
  const byOrder = new Index(nearby, (l) => l.orderId);
  return (ours) => {
    if (ours.transactionId !== '' && byTx.has(ours.transactionId)) return true;
    return (byOrder.get(ours.orderId) ?? []).some((l) => (l.transactionId === '' || ours.transactionId === '') && sameMoney(l, ours));
  };
}

function reconcilePayments(
  period: Period,
  lines: StatementEntry[],
  attempts: readonly OurAttempt[],
  matches: Match[],
  breaks: Break[],
  across: (a: OurAttempt) => boolean,
): void {
  const byTx = new Index(attempts, (a) => a.transactionId);
  const byOrder = new Index(attempts, (a) => a.orderId);
  // The first line each attempt received is its settlement, kept as the match it becomes when
  // nothing disagrees; further lines on it (duplicates, rare) apart.
  const settled = new Map<OurAttempt, Match>();
  const further = new Map<OurAttempt, StatementEntry[]>();
  const assign = (a: OurAttempt, line: StatementEntry, by: MatchedBy) => {
    if (!settled.has(a)) settled.set(a, { line, attempt: a, by });
    else {
      const list = further.get(a);
      if (list) list.push(line);
      else further.set(a, [line]);
    }
  };
  // Candidates of an ambiguous line are accounted for by that break, not again as not settled.
  const held = new Set<OurAttempt>();
  const ambiguous = (line: StatementEntry, candidates: readonly OurAttempt[], why: string) => {
    for (const a of candidates) held.add(a);
    breaks.push({
      kind: 'ambiguous',
      line,
      detail: `${why}: attempts ${candidates.map((a) => a.attempt).join(', ')} of order ${JSON.stringify(candidates[0]!.orderId)}`,
    });
  };
  const byOrderLines: StatementEntry[] = [];
  for (const line of lines) {
    const candidates = line.transactionId === '' ? undefined : byTx.get(line.transactionId);
    if (!candidates) byOrderLines.push(line);
    else if (candidates.length === 1) assign(candidates[0]!, line, 'transaction_id');
    else ambiguous(line, candidates, `${candidates.length} of our attempts have this transaction id`);
  }
  for (const line of byOrderLines) {
    const candidates = byOrder.get(line.orderId) ?? [];
    if (candidates.length === 0) {
      breaks.push({ kind: 'charged_not_recorded', line, detail: 'the platform charged, we have no such attempt' });
      continue;
    }
    const open = candidates.filter((a) => !settled.has(a));
    const exact = open.filter((a) => sameMoney(line, a));
    const succeeded = exact.filter((a) => a.status === 'succeeded');
    if (exact.length === 1) assign(exact[0]!, line, 'order_amount');
    else if (exact.length > 1 && succeeded.length === 1) assign(succeeded[0]!, line, 'order_amount');
    else if (exact.length > 1) ambiguous(line, exact, `${exact.length} equally good candidates with this amount and currency`);
    else {
      const settledExact = candidates.filter((a) => settled.has(a) && sameMoney(line, a));
      if (settledExact.length > 0) assign(settledExact[0]!, line, 'order_amount');
      else if (open.length === 1) assign(open[0]!, line, 'order');
      else if (open.length > 1) ambiguous(line, open, `${open.length} candidates, none with this amount`);
      else assign(candidates[0]!, line, 'order');
    }
  }
  for (const attempt of attempts) {
    const first = settled.get(attempt);
    if (!first) {
      if (attempt.status === 'succeeded' && inPeriod(period, attempt.lastAtMs) && !held.has(attempt) && !across(attempt))
        breaks.push({ kind: 'recorded_not_settled', attempt, detail: 'we recorded succeeded, the statement has no such charge' });
      continue;
    }
    const line = first.line;
    if (attempt.status !== 'succeeded')
      breaks.push({ kind: 'charged_not_recorded', line, attempt, detail: `the platform charged, our latest status is ${attempt.status}` });
    else if (line.currency !== attempt.currency)
      breaks.push({ kind: 'currency_mismatch', line, attempt, detail: `statement ${line.currency}, ours ${attempt.currency}` });
    else if (line.amountMinor !== attempt.amountMinor)
      breaks.push({ kind: 'amount_mismatch', line, attempt, detail: `statement ${line.amountMinor}, ours ${attempt.amountMinor} (minor units)` });
    else matches.push(first);
    for (const extra of further.get(attempt) ?? [])
      breaks.push({
        kind: 'duplicate_settlement',
        line: extra,
        attempt,
        detail: `another settled charge for attempt ${attempt.attempt} of order ${JSON.stringify(attempt.orderId)}`,
      });
  }
}

function reconcileRefunds(
  period: Period,
  lines: StatementEntry[],
  refunds: readonly OurRefund[],
  matches: Match[],
  breaks: Break[],
  across: (r: OurRefund) => boolean,
): void {
  const ordered = [...refunds].sort((a, b) => a.occurredAtMs - b.occurredAtMs || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
  const byTx = new Index(ordered, (r) => r.transactionId);
  const byOrder = new Index(ordered, (r) => r.orderId);
  const taken = new Set<OurRefund>();
  const held = new Set<OurRefund>();
  for (const line of lines) {
    const viaTx = line.transactionId === '' ? undefined : byTx.get(line.transactionId);
    const candidates = viaTx ?? byOrder.get(line.orderId) ?? [];
    const by: MatchedBy = viaTx ? 'transaction_id' : 'order_amount';
    const open = candidates.filter((r) => !taken.has(r));
    const exact = open.find((r) => sameMoney(line, r));
    if (exact) {
      taken.add(exact);
      matches.push({ line, refund: exact, by });
    } else if (open.length === 1) {
      taken.add(open[0]!);
      breaks.push({
        kind: 'refund_mismatch',
        line,
        refund: open[0]!,
        detail: `refund: statement ${line.amountMinor} ${line.currency}, ours ${open[0]!.amountMinor} ${open[0]!.currency}`,
      });
    } else if (open.length > 1) {
      for (const r of open) held.add(r);
      breaks.push({
        kind: 'ambiguous',
        line,
        detail: `${open.length} of our refunds (${open.map((r) => `${r.amountMinor} ${r.currency}`).join(', ')}) could be this refund, none with its amount`,
      });
    } else {
      breaks.push({ kind: 'refund_mismatch', line, detail: 'the platform refunded, we recorded no such refund' });
    }
  }
  for (const refund of ordered) {
    if (!taken.has(refund) && !held.has(refund) && inPeriod(period, refund.occurredAtMs) && !across(refund))
      breaks.push({ kind: 'refund_mismatch', refund, detail: 'we recorded a refund, the statement has none' });
  }
}
