import { formatMinor } from './money.ts';
import { breakKinds, type BreakKind } from './match.ts';
import { formatPeriod } from './period.ts';
import type { PeriodOutcome } from './reconcile.ts';
import type { Period } from './types.ts';

type Row = Record<string, unknown>;
const iso = (s: unknown) => new Date(Number(s) * 1000).toISOString().replace('.000Z', 'Z');

/** A reconciliation outcome as JSON. */
export function outcomeJson(o: PeriodOutcome): Row {
  if (o.status === 'open')
    return {
      status: 'open',
      channel: o.channel,
      period_from: new Date(o.period.fromMs).toISOString(),
      period_to: new Date(o.period.toMs).toISOString(),
      closes_at: o.closesAt.toISOString(),
    };
  const r = o.run;
  return {
    status: 'reconciled',
    channel: r.channel,
    period_from: new Date(r.period.fromMs).toISOString(),
    period_to: new Date(r.period.toMs).toISOString(),
    version: r.version,
    lines: r.lines,
    attempts: r.attempts,
    refunds: r.refunds,
    matched: r.matched,
    breaks: r.breaks,
    duration_ms: r.durationMs,
  };
}

/** One line of text for a reconciliation outcome. */
export function formatOutcome(o: PeriodOutcome): string {
  if (o.status === 'open')
    return (
      `Channel ${o.channel}, period ${formatPeriod(o.period)}: not reconciled yet, the period plus STATEMENT_GRACE ends at ` +
      `${o.closesAt.toISOString()} (the statements job does it then).`
    );
  const r = o.run;
  const found = breakKinds.filter((k) => r.breaks[k] > 0).map((k) => `${k} ${r.breaks[k]}`);
  return (
    `Reconciled channel ${r.channel}, period ${formatPeriod(r.period)}: ${r.lines} statement lines, ${r.attempts} attempts, ${r.refunds} refunds; ` +
    `${r.matched} matched; breaks: ${found.length ? found.join(', ') : 'none'} (${(r.durationMs / 1000).toFixed(1)} s).`
  );
}

/** A statement_breaks row as JSON, both sides spelled out. */
export function breakJson(r: Row): Row {
  return {
    break_id: r.break_id,
    kind: r.kind,
    channel: r.channel,
    period_from: iso(r.from_s),
    period_to: iso(r.to_s),
    order_id: r.order_id,
    transaction_id: r.transaction_id,
    detail: r.detail,
    statement: Number(r.has_statement)
      ? {
          file_hash: r.statement_file_hash,
          line: Number(r.statement_line),
          type: r.statement_type,
          amount_minor: Number(r.statement_amount_minor),
          currency: r.statement_currency,
          occurred_at: iso(r.statement_s),
        }
      : null,
    ours: Number(r.has_ours)
      ? {
          attempt: Number(r.our_attempt),
          status: r.our_status,
          refund_event_id: r.our_refund_event_id,
          amount_minor: Number(r.our_amount_minor),
          currency: r.our_currency,
          occurred_at: iso(r.ours_s),
        }
      : null,
    amount_at_stake_minor: Number(r.amount_at_stake_minor),
    currency: r.currency,
  };
}

/** The breaks as a table. */
export function formatBreaks(rows: readonly Row[]): string {
  if (rows.length === 0) return 'No breaks.';
  const money = (has: unknown, amount: unknown, currency: unknown) => (Number(has) ? `${formatMinor(Number(amount), String(currency))} ${currency}` : '-');
  const table = rows.map((r) => [
    iso(r.from_s).slice(0, 16),
    String(r.channel),
    String(r.kind),
    JSON.stringify(String(r.order_id)),
    JSON.stringify(String(r.transaction_id)),
    money(r.has_statement, r.statement_amount_minor, r.statement_currency) + (Number(r.has_statement) ? ` (line ${r.statement_line})` : ''),
    money(r.has_ours, r.our_amount_minor, r.our_currency) + (Number(r.has_ours) && r.our_status ? ` (${r.our_status})` : ''),
    String(r.detail),
  ]);
  const head = ['period', 'channel', 'kind', 'order', 'transaction', 'statement', 'ours', 'detail'];
  const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...table.map((row) => row[i]!.length))));
  const fmt = (row: string[]) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(head), ...table.map(fmt)].join('\n');
}

export interface ChannelSummary {
  channel: string;
  periods: number;
  lines: number;
  matched: number;
  breaks: Record<BreakKind, number>;
  /** Per currency, in minor units. */
  matchedAmounts: Record<string, { payments: number; refunds: number }>;
  atStake: Record<string, number>;
}

/** Per channel, from the three summary queries. */
export function summarize(runs: readonly Row[], breaks: readonly Row[], matches: readonly Row[]): ChannelSummary[] {
  return runs.map((r) => {
    const channel = String(r.channel);
    const kinds = Object.fromEntries(breakKinds.map((k) => [k, 0])) as Record<BreakKind, number>;
    const atStake: Record<string, number> = {};
    for (const b of breaks.filter((x) => x.channel === channel)) {
      kinds[String(b.kind) as BreakKind] += Number(b.n);
      atStake[String(b.currency)] = (atStake[String(b.currency)] ?? 0) + Number(b.amount);
    }
    const matchedAmounts: ChannelSummary['matchedAmounts'] = {};
    for (const m of matches.filter((x) => x.channel === channel)) {
      const entry = (matchedAmounts[String(m.currency)] ??= { payments: 0, refunds: 0 });
      if (m.type === 'refund') entry.refunds += Number(m.amount);
      else entry.payments += Number(m.amount);
    }
    return { channel, periods: Number(r.periods), lines: Number(r.n_lines), matched: Number(r.n_matched), breaks: kinds, matchedAmounts, atStake };
  });
}

/** The summary as text, one block per channel. */
export function formatSummary(channels: readonly ChannelSummary[], period: Period): string {
  if (channels.length === 0) return `No reconciled statement period starts in ${formatPeriod(period)}.`;
  const out = [`Statements reconciled for periods starting in ${formatPeriod(period)}:`];
  for (const c of channels) {
    const rate = c.lines === 0 ? 0 : c.matched / c.lines;
    out.push(`\n${c.channel}: ${c.periods} period${c.periods === 1 ? '' : 's'}, ${c.lines} lines, ${c.matched} matched (${(rate * 100).toFixed(2)}%)`);
    for (const k of breakKinds) if (c.breaks[k] > 0) out.push(`  ${k.padEnd(22)} ${c.breaks[k]}`);
    for (const [cur, a] of Object.entries(c.matchedAmounts))
      out.push(`  matched ${cur}: payments ${formatMinor(a.payments, cur)}, refunds ${formatMinor(a.refunds, cur)}`);
    for (const [cur, a] of Object.entries(c.atStake)) if (cur) out.push(`  at stake in breaks ${cur}: ${formatMinor(a, cur)}`);
  }
  return out.join('\n');
}
