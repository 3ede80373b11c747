import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { importStatement, type ImportResult } from './import.ts';
import { formatPeriod, parsePeriod } from './period.ts';
import { describeProblem, formats, type StatementFormat } from './types.ts';

const help = `Usage:
  paysentinel statements import FILE [--format generic|wechat|alipay|stripe] [--channel NAME]
                                     [--period DATE|RANGE] [--dry-run] [--skip-invalid] [--json]

import    Reads a payment platform's statement file and stores its lines in ClickHouse
          (statement_files, statement_lines), each with its file, line number and raw text.
          A file is identified by the SHA-256 of its bytes: importing it again changes nothing
          and says so. Files over STATEMENT_MAX_BYTES are refused before they are read. If any
          line is invalid (an amount the currency cannot represent such as 10.005 USD, 12,5,
          1e3, an unknown currency, a missing column, a bad time), nothing is imported: every
          invalid line is listed with its file, line and column (the first 50, then a count)
          and the exit code is 1. A wrong encoding, a truncated file or a summary that
          disagrees with the details refuses the file the same way.

Formats (README, "Statements", has an example of each):
  generic   UTF-8 CSV with a header: transaction_id, order_id, type (payment|refund),
            amount (major units, 12.50), currency, occurred_at (RFC 3339)[, fee]
  wechat    WeChat Pay daily trade bill (交易账单), UTF-8, backtick-prefixed fields, Beijing time
  alipay    Alipay business detail file (业务明细) as downloaded: GBK, # lines around the table
  stripe    Stripe itemized balance change report CSV (charges and refunds); the order id from
            the payment_metadata[order_id] column

Options:
  --format F        The file's format. Default: generic.
  --channel NAME    The channel its lines belong to. Default: wechat_pay (wechat), alipay
                    (alipay), card (stripe); required for generic.
  --period P        The period the file covers: a UTC day (2026-11-25) or FROM..TO, each a date
                    (midnight UTC) or an RFC 3339 time with a zone, meaning [FROM, TO).
                    Default: the bill's Beijing day (wechat), the header's dates (alipay), the
                    UTC days its lines span (generic, stripe).
  --dry-run         Parse and check only; write nothing.
  --skip-invalid    Import the valid lines; record the invalid ones with their reasons.
  --json            Print the result as one JSON object.

Exit codes: 0 imported, already imported or dry run passed; 1 refused; 2 usage error.

Examples:
  paysentinel statements import 1900000109All2026-11-25.csv --format wechat
  paysentinel statements import 20880000000000000156_20261125_业务明细.csv --format alipay --dry-run
  paysentinel statements import settled.csv --channel bank_transfer --period 2026-11-25`;

const usage = (message: string): never => {
  throw new PaysentinelError('USAGE', `${message}\nRun "paysentinel statements --help" for usage.`);
};

export const statementsCommand: Command = {
  name: 'statements',
  summary: "Import payment platforms' statements (statements import)",
  help,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'import') return usage(sub === undefined ? 'Missing subcommand: import.' : `Unknown subcommand "${sub}".`);
    const { values, positionals } = parseCommandArgs(
      'statements',
      rest,
      {
        format: { type: 'string' },
        channel: { type: 'string' },
        period: { type: 'string' },
        'dry-run': { type: 'boolean' },
        'skip-invalid': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      true,
    );
    if (positionals.length !== 1) return usage('Give exactly one FILE to import.');
    const format = (values.format ?? 'generic') as StatementFormat;
    if (!formats.includes(format)) return usage(`--format ${JSON.stringify(values.format)} is not one of ${formats.join(', ')}.`);
    const period = values.period === undefined ? undefined : (parsePeriod(values.period) ?? usage(`--period ${JSON.stringify(values.period)} is not a date (2026-11-25) or a range FROM..TO.`));
    if (values.channel !== undefined && !/^[^\s]{1,64}$/.test(values.channel)) return usage('--channel must be 1 to 64 characters without spaces.');
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel });
    const clickhouse = createClickHouse(config);
    try {
      if (!values['dry-run']) await migrate(clickhouse, config.clickhouseDatabase, logger);
      const result = await importStatement(
        { clickhouse, database: config.clickhouseDatabase, logger },
        { path: positionals[0]!, format, channel: values.channel, period, dryRun: values['dry-run'], skipInvalid: values['skip-invalid'], maxBytes: config.statementMaxBytes },
      );
      if (values.json) process.stdout.write(JSON.stringify(resultJson(result)) + '\n');
      else printResult(result, positionals[0]!);
      return result.status === 'refused' ? 1 : 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') {
        throw new PaysentinelError('STATEMENT_REFUSED', `cannot read ${positionals[0]}: ${(err as Error).message}`, { cause: err });
      }
      throw err;
    } finally {
      await clickhouse.close();
    }
  },
};

function resultJson(r: ImportResult): Record<string, unknown> {
  if (r.status === 'refused') return { status: r.status, file: r.fileName, reason: r.reason, problem: r.problem ?? null, invalid_count: r.invalidCount, invalid: r.invalid.map(({ status: _s, ...l }) => l) };
  const f = r.file;
  const file = { name: f.fileName, sha256: f.hash, format: f.format, channel: f.channel, period_from: new Date(f.period.fromMs).toISOString(), period_to: new Date(f.period.toMs).toISOString(), size_bytes: f.sizeBytes, lines_settled: f.linesSettled, lines_not_settled: f.linesNotSettled, lines_invalid: f.linesInvalid, imported_at: f.importedAt.toISOString() };
  return r.status === 'already_imported' ? { status: r.status, file } : { status: r.status, file, invalid: r.invalid.map(({ status: _s, ...l }) => l) };
}

function printResult(r: ImportResult, path: string): void {
  if (r.status === 'refused') {
    const out = [`Refused ${path}: ${r.reason}`];
    if (r.problem) out.push(`  ${describeProblem(path, r.problem)}`);
    for (const l of r.invalid) out.push(`  ${describeProblem(path, l)}\n      ${JSON.stringify(l.raw)}`);
    if (r.invalidCount > r.invalid.length) out.push(`  ... and ${r.invalidCount - r.invalid.length} more invalid lines`);
    process.stderr.write(out.join('\n') + '\n');
    return;
  }
  const f = r.file;
  const what = `${f.fileName} (${f.format}, channel ${f.channel}, period ${formatPeriod(f.period)}, sha256 ${f.hash.slice(0, 12)})`;
  const counts = `${f.linesSettled} settled lines, ${f.linesNotSettled} not settled, ${f.linesInvalid} invalid`;
  if (r.status === 'already_imported') process.stdout.write(`Already imported on ${f.importedAt.toISOString()}: ${what}, ${counts}. Nothing changed.\n`);
  else process.stdout.write(`${r.status === 'dry_run' ? 'Dry run, nothing written: would import' : 'Imported'} ${what}: ${counts}.\n`);
  if (r.status === 'already_imported') return;
  for (const l of r.invalid) process.stdout.write(`  recorded as invalid: ${describeProblem(path, l)}\n`);
}
