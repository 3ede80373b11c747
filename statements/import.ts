import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Logger } from '../log/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { insertTsv } from '../storage/tsv.ts';
import { defaultChannel, parseStatement } from './formats.ts';
import { formatPeriod } from './period.ts';
import {
  fileByHashQuery,
  fileRecordOf,
  fileRow,
  LINE_COLUMNS,
  lineCells,
  statementFilesTable,
  statementLinesTable,
  type StatementFileRecord,
} from './store.ts';
import type { FileProblem, InvalidLine, ParsedLine, Period, SettledLine, StatementFormat } from './types.ts';

/** What an import needs; nothing is read from globals. */
export interface StatementDeps {
  clickhouse: ClickHouseClient;
  database: string;
  logger: Logger;
}

export interface ImportOptions {
  path: string;
  format: StatementFormat;
  /** The channel the lines belong to (the event contract's name). @default wechat_pay, alipay, card by format; required for generic */
  channel?: string;
  /** The period the file covers; overrides what the file says or its lines span. */
  period?: Period;
  /**
   * Refuse the file when a settled line occurred outside `period`: the period was named by
   * someone (the inbox's file-name convention), so a line outside it means a wrong name.
   */
  linesWithinPeriod?: boolean;
  /** Parse and check only; write nothing. */
  dryRun?: boolean;
  /** Import the valid lines and record the invalid ones with their reasons instead of refusing the file. */
  skipInvalid?: boolean;
  /** Files larger than this are refused before they are read (STATEMENT_MAX_BYTES). */
  maxBytes: number;
  /** How many invalid lines a refusal lists before it only counts the rest. @default 50 */
  listLimit?: number;
  /** @default () => new Date() */
  clock?: () => Date;
}

/** The outcome of one import: a value, also for files that are refused. */
export type ImportResult =
  | { status: 'imported' | 'dry_run'; file: StatementFileRecord; invalid: InvalidLine[] }
  | { status: 'already_imported'; file: StatementFileRecord }
  | { status: 'refused'; fileName: string; reason: string; problem?: FileProblem; invalid: InvalidLine[]; invalidCount: number };

const INSERT_CHUNK = 100_000;

/**
 * Imports one statement file: refused over `maxBytes` before reading; identified by the SHA-256
 * of its bytes, so importing the same file again writes nothing; refused whole when any line is
 * invalid unless `skipInvalid`; lines first, then the file's row, so a crash in between leaves
 * a file that a re-import completes.
 */
export async function importStatement(deps: StatementDeps, o: ImportOptions): Promise<ImportResult> {
  const fileName = basename(o.path);
  const limit = o.listLimit ?? 50;
  const refuse = (reason: string, invalid: InvalidLine[] = [], problem?: FileProblem): ImportResult => ({
    status: 'refused',
    fileName,
    reason,
    problem,
    invalid: invalid.slice(0, limit),
    invalidCount: invalid.length,
  });
  const bytes = await readBounded(o.path, o.maxBytes);
  if (bytes === 'too_large') return refuse(`the file is larger than STATEMENT_MAX_BYTES (${o.maxBytes} bytes) and was not read`);
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (!o.dryRun) {
    const existing = await queryRows(deps.clickhouse, fileByHashQuery(deps.database, hash), 'look up statement file');
    if (existing[0]) return { status: 'already_imported', file: fileRecordOf(existing[0]) };
  }
  const channel = o.channel ?? defaultChannel[o.format];
  if (channel === '') return refuse('the generic format needs --channel (the channel its lines were paid through, e.g. alipay)');
  const outcome = parseStatement(o.format, bytes);
  if (!outcome.ok) return refuse(outcome.problem.reason, invalidOf(outcome.lines), outcome.problem);
  const { lines } = outcome.statement;
  const invalid = invalidOf(lines);
  if (invalid.length > 0 && !o.skipInvalid)
    return refuse(
      `${invalid.length} invalid line${invalid.length === 1 ? '' : 's'}: nothing was imported (--skip-invalid imports the valid lines and records the others)`,
      invalid,
    );
  const period = o.period ?? outcome.statement.period;
  if (!period) return refuse('the file has no settled line to derive its period from: give --period');
  if (o.linesWithinPeriod) {
    const outside = lines.filter((l): l is SettledLine => l.status === 'settled' && (l.occurredAtMs < period.fromMs || l.occurredAtMs >= period.toMs));
    if (outside.length > 0)
      return refuse(
        `${outside.length} settled line${outside.length === 1 ? '' : 's'} occurred outside the period ${formatPeriod(period)} its name gives ` +
          `(first: line ${outside[0]!.line} at ${new Date(outside[0]!.occurredAtMs).toISOString()}): ` +
          'rename the file with the period it covers, or import it with --period',
      );
  }
  const file: StatementFileRecord = {
    hash,
    fileName,
    format: o.format,
    channel,
    period,
    sizeBytes: bytes.byteLength,
    linesSettled: lines.filter((l) => l.status === 'settled').length,
    linesNotSettled: lines.filter((l) => l.status === 'not_settled').length,
    linesInvalid: invalid.length,
    importedAt: (o.clock ?? (() => new Date()))(),
  };
  if (o.dryRun) return { status: 'dry_run', file, invalid: invalid.slice(0, limit) };
  for (let i = 0; i < lines.length; i += INSERT_CHUNK) {
    const rows = lineCells(file, lines.slice(i, i + INSERT_CHUNK));
    await insertTsv(deps.clickhouse, statementLinesTable(deps.database), LINE_COLUMNS, rows, 'insert statement lines');
  }
  await insertRows(deps.clickhouse, statementFilesTable(deps.database), [fileRow(file)], 'record statement file');
  deps.logger.info('statement imported', { file: fileName, hash, format: o.format, channel, settled: file.linesSettled, invalid: invalid.length });
  return { status: 'imported', file, invalid: invalid.slice(0, limit) };
}

const invalidOf = (lines: readonly ParsedLine[]): InvalidLine[] => lines.filter((l): l is InvalidLine => l.status === 'invalid');

// Checks the size on the open handle, so a file that grows between stat and read is still bounded.
async function readBounded(path: string, maxBytes: number): Promise<Uint8Array | 'too_large'> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) return 'too_large';
    const buffer = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const { bytesRead } = await handle.read(buffer, read, size - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return buffer.subarray(0, read);
  } finally {
    await handle.close();
  }
}
