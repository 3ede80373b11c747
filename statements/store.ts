import { toDateTimeText } from '../ingest/records.ts';
import { ident, sql } from '../storage/sql.ts';
import type { ParsedLine, Period, StatementFormat } from './types.ts';

/** Tables of migration 017. */
export const statementFilesTable = (database: string): string => ident(database, 'statement_files').text;
export const statementLinesTable = (database: string): string => ident(database, 'statement_lines').text;

/** What statement_files records about one imported file. */
export interface StatementFileRecord {
  hash: string;
  fileName: string;
  format: StatementFormat;
  channel: string;
  period: Period;
  sizeBytes: number;
  linesSettled: number;
  linesNotSettled: number;
  linesInvalid: number;
  importedAt: Date;
}

/** The recorded import of the file with this content hash, if any. */
export const fileByHashQuery = (database: string, hash: string): string =>
  sql`SELECT file_hash, file_name, format, channel, toUInt32(period_from) AS from_s, toUInt32(period_to) AS to_s, size_bytes,
  lines_settled, lines_not_settled, lines_invalid, toUInt32(imported_at) AS imported_s
FROM ${ident(database, 'statement_files')} FINAL WHERE file_hash = ${hash} LIMIT 1`;

/** Row of fileByHashQuery -> record. */
export function fileRecordOf(r: Record<string, unknown>): StatementFileRecord {
  return {
    hash: String(r.file_hash),
    fileName: String(r.file_name),
    format: String(r.format) as StatementFormat,
    channel: String(r.channel),
    period: { fromMs: Number(r.from_s) * 1000, toMs: Number(r.to_s) * 1000 },
    sizeBytes: Number(r.size_bytes),
    linesSettled: Number(r.lines_settled),
    linesNotSettled: Number(r.lines_not_settled),
    linesInvalid: Number(r.lines_invalid),
    importedAt: new Date(Number(r.imported_s) * 1000),
  };
}

/** The statement_files row of a record (JSONEachRow). */
export function fileRow(f: StatementFileRecord): Record<string, unknown> {
  return {
    file_hash: f.hash,
    file_name: f.fileName,
    format: f.format,
    channel: f.channel,
    period_from: toDateTimeText(f.period.fromMs),
    period_to: toDateTimeText(f.period.toMs),
    size_bytes: f.sizeBytes,
    lines_settled: f.linesSettled,
    lines_not_settled: f.linesNotSettled,
    lines_invalid: f.linesInvalid,
    imported_at: toDateTimeText(f.importedAt.getTime()),
  };
}

/** One statement_lines row (JSONEachRow) for a parsed line of a file. */
export function lineRow(file: Pick<StatementFileRecord, 'hash' | 'channel' | 'period' | 'importedAt'>, l: ParsedLine): Record<string, unknown> {
  const base = {
    file_hash: file.hash,
    line: l.line,
    raw: l.raw,
    status: l.status,
    channel: file.channel,
    period_from: toDateTimeText(file.period.fromMs),
    period_to: toDateTimeText(file.period.toMs),
    imported_at: toDateTimeText(file.importedAt.getTime()),
  };
  if (l.status !== 'settled') {
    return {
      ...base,
      reason: l.reason,
      column_name: l.status === 'invalid' ? l.column : '',
      transaction_id: '',
      order_id: '',
      type: '',
      amount_minor: 0,
      currency: '',
      occurred_at: toDateTimeText(0),
      occurred_ms: 0,
      fee_units: null,
      fee_scale: 0,
      refund_id: '',
    };
  }
  return {
    ...base,
    reason: '',
    column_name: '',
    transaction_id: l.transactionId,
    order_id: l.orderId,
    type: l.type,
    amount_minor: l.amountMinor,
    currency: l.currency,
    occurred_at: toDateTimeText(l.occurredAtMs),
    occurred_ms: l.occurredAtMs % 1000,
    fee_units: l.fee === null ? null : Number(l.fee.units),
    fee_scale: l.fee?.scale ?? 0,
    refund_id: l.refundId,
  };
}

/** A file's lines as stored, in line order; bounded to the file's channel and period (the table's key). */
export const fileLinesQuery = (database: string, file: Pick<StatementFileRecord, 'hash' | 'channel' | 'period'>): string =>
  sql`SELECT line, toString(status) AS status, reason, column_name, raw, channel, transaction_id, order_id, type, amount_minor, currency,
  toUInt32(occurred_at) AS occurred_s, occurred_ms, fee_units, fee_scale, refund_id
FROM ${ident(database, 'statement_lines')} FINAL
WHERE channel = ${file.channel} AND period_from = toDateTime(${Math.floor(file.period.fromMs / 1000)}, 'UTC') AND file_hash = ${file.hash}
ORDER BY line`;
