/** The shapes every statement format parses into, whatever the provider's layout. */

export const formats = ['generic', 'wechat', 'alipay', 'stripe'] as const;
export type StatementFormat = (typeof formats)[number];

/** A half-open time range [fromMs, toMs) in epoch milliseconds. */
export interface Period {
  fromMs: number;
  toMs: number;
}

/**
 * One line of the file that is a settled payment or refund, in the generic format's terms:
 * amounts in integer minor units, refunds positive, times in epoch ms.
 */
export interface SettledLine {
  status: 'settled';
  /** 1-based physical line number in the file (the record's first line). */
  line: number;
  /** The line as it is in the file (after decoding), without its line end. */
  raw: string;
  transactionId: string;
  orderId: string;
  type: 'payment' | 'refund';
  amountMinor: number;
  currency: string;
  occurredAtMs: number;
  /** The platform's fee as an exact decimal in major units (units / 10^scale), when the file gives one. */
  fee: { units: bigint; scale: number } | null;
  /** The platform's refund id, when the format has one. */
  refundId: string;
}

/** A well-formed line that moves no settled money for us (a revoked trade, a refund still processing, a payout). */
export interface OtherLine {
  status: 'not_settled';
  line: number;
  raw: string;
  reason: string;
}

/** A line that breaks the format; `column` names the offending column when there is one. */
export interface InvalidLine {
  status: 'invalid';
  line: number;
  raw: string;
  column: string;
  reason: string;
}

export type ParsedLine = SettledLine | OtherLine | InvalidLine;

/** What a parser returns: every line of the table, and the period the file covers. */
export interface ParsedStatement {
  format: StatementFormat;
  lines: ParsedLine[];
  /** The period from the file itself (a bill's day, Alipay's header) or derived from its lines; undefined when there is no line to derive it from. */
  period?: Period;
}

/** A problem with the whole file (encoding, missing header, truncated, summary disagreeing): nothing of it is usable. */
export interface FileProblem {
  line: number;
  column: string;
  reason: string;
}

export type ParseOutcome = { ok: true; statement: ParsedStatement } | { ok: false; problem: FileProblem; lines: ParsedLine[] };

/** Formats a problem as `file:line: column "x": reason`, the form every message uses. */
export function describeProblem(file: string, p: { line: number; column: string; reason: string }): string {
  return `${file}:${p.line}:${p.column ? ` column ${JSON.stringify(p.column)}:` : ''} ${p.reason}`;
}
