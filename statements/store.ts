import { ident, sql, toDateTimeText } from '../storage/sql.ts';
import type { TsvValue } from '../storage/tsv.ts';
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

/** statement_lines' columns, in the order lines are inserted. */
export const LINE_COLUMNS = [
  'file_hash',
  'line',
  'raw',
  'status',
  'reason',
  'column_name',
  'channel',
  'period_from',
  'period_to',
  'transaction_id',
  'order_id',
  'type',
  'amount_minor',
  'currency',
  'occurred_at',
  'occurred_ms',
  'fee_units',
  'fee_scale',
  'refund_id',
  'imported_at',
] as const;

/**
 * The statement_lines rows of a file's parsed lines, each in LINE_COLUMNS order. The file's own
 * values are formatted once: this runs for every line of files with millions of them.
 */
export function lineCells(file: Pick<StatementFileRecord, 'hash' | 'channel' | 'period' | 'importedAt'>, lines: readonly ParsedLine[]): TsvValue[][] {
  const from = toDateTimeText(file.period.fromMs);
  const to = toDateTimeText(file.period.toMs);
  const imported = toDateTimeText(file.importedAt.getTime());
  const epoch = toDateTimeText(0);
  return lines.map((l): TsvValue[] =>
    l.status === 'settled'
      ? [
          file.hash,
          l.line,
          l.raw,
          l.status,
          '',
          '',
          file.channel,
          from,
          to,
          l.transactionId,
          l.orderId,
          l.type,
          l.amountMinor,
          l.currency,
          toDateTimeText(l.occurredAtMs),
          l.occurredAtMs % 1000,
          l.fee === null ? null : Number(l.fee.units),
          l.fee?.scale ?? 0,
          l.refundId,
          imported,
        ]
      : [
          file.hash,
          l.line,
          l.raw,
          l.status,
          l.reason,
          l.status === 'invalid' ? l.column : '',
          file.channel,
          from,
          to,
          '',
          '',
          '',
          0,
          '',
          epoch,
          0,
          null,
          0,
          '',
          imported,
        ],
  );
}

/** A file's lines as stored, in line order; bounded to the file's channel and period (the table's key). */
export const fileLinesQuery = (database: string, file: Pick<StatementFileRecord, 'hash' | 'channel' | 'period'>): string =>
  sql`SELECT line, toString(status) AS status, reason, column_name, raw, channel, transaction_id, order_id, type, amount_minor, currency,
  toUInt32(occurred_at) AS occurred_s, occurred_ms, fee_units, fee_scale, refund_id
FROM ${ident(database, 'statement_lines')} FINAL
WHERE channel = ${file.channel} AND period_from = toDateTime(${Math.floor(file.period.fromMs / 1000)}, 'UTC') AND file_hash = ${file.hash}
ORDER BY line`;
