import { numberOption, parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig, type Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { importStatement, type ImportResult, type StatementDeps } from './import.ts';
import { breakKinds } from './match.ts';
import { formatPeriod, parsePeriod } from './period.ts';
import { breaksQuery, summaryBreaksQuery, summaryMatchesQuery, summaryRunsQuery } from './reconcile-queries.ts';
import { reconcilePeriod } from './reconcile.ts';
import { run as runStatementsJob } from './job.ts';
import { breakJson, formatBreaks, formatOutcome, formatSummary, outcomeJson, summarize } from './report.ts';
import { describeProblem, formats, type Period, type StatementFormat } from './types.ts';

const help = `Usage:
  paysentinel statements import FILE [--format generic|wechat|alipay|stripe] [--channel NAME]
                                     [--period DATE|RANGE] [--dry-run] [--skip-invalid] [--json]
  paysentinel statements reconcile --channel NAME --period DATE|RANGE [--json]
  paysentinel statements breaks [--from T] [--to T] [--kind KIND] [--channel NAME] [--limit N] [--json]
  paysentinel statements summary --period DATE|RANGE [--json]
  paysentinel statements job [--json]

import    Reads a payment platform's statement file and stores its lines in ClickHouse
          (statement_files, statement_lines), each with its file, line number and raw text.
          A file is identified by the SHA-256 of its bytes: importing it again changes nothing
          and says so. Files over STATEMENT_MAX_BYTES are refused before they are read. If any
          line is invalid (an amount the currency cannot represent such as 10.005 USD, 12,5,
          1e3, an unknown currency, a missing column, a bad time), nothing is imported: every
          invalid line is listed with its file, line and column (the first 50, then a count)
          and the exit code is 1. A wrong encoding, a truncated file or a summary that
          disagrees with the details refuses the file the same way. Once the file's period
          has ended and STATEMENT_GRACE has passed, the period is reconciled at once (else the
          scheduled statements job does it later).
reconcile Reconciles a channel's statement period against our records now (it must have ended
          STATEMENT_GRACE ago) and replaces that period's results. Every settled statement line
          and every attempt we recorded as succeeded in the period ends as a match or as one
          break: charged_not_recorded, recorded_not_settled, amount_mismatch,
          currency_mismatch, duplicate_settlement, refund_mismatch or ambiguous.
breaks    Lists the breaks of the latest run of each period starting in [--from, --to)
          (default: the last 7 days), both sides' values, oldest period first.
summary   Per channel over the periods starting in the given period: lines, matched, breaks by
          kind, and the amounts matched and at stake per currency.
job       Runs the scheduled statements job once (recorded in job_runs): imports the new files
          of STATEMENTS_DIR, laid out as <format>/<file> or <format>/<channel>/<file> (generic
          files need the channel folder), each once, then reconciles every period with a file
          imported since its last run that has ended plus STATEMENT_GRACE. Generic and Stripe
          files name their period: ..._2026-11-25.csv (a UTC day), ..._2026-11-25..2026-11-27.csv
          (two days), ..._2026-11-25+0800.csv (a day in that zone); a file without one, with two
          dates, or with a line outside it is refused (the reason in statement_inbox; rename it
          to import it).

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
  --json            Print the result as JSON (breaks: one object per line).
  --from T, --to T  Periods starting in [T, T): a date (midnight UTC) or RFC 3339 with a zone.
  --kind KIND       Only breaks of this kind.
  --limit N         At most N breaks (default 1000).

Exit codes: 0 done (also: already imported); 1 refused; 2 usage error.

Examples:
  paysentinel statements import 1900000109All2026-11-25.csv --format wechat
  paysentinel statements import 20880000000000000156_20261125_业务明细.csv --format alipay --dry-run
  paysentinel statements import settled.csv --channel bank_transfer --period 2026-11-25
  paysentinel statements breaks --from 2026-11-24 --kind charged_not_recorded
  paysentinel statements summary --period 2026-11-24..2026-11-26`;

const usage = (message: string): never => {
  throw new PaysentinelError('USAGE', `${message}\nRun "paysentinel statements --help" for usage.`);
};

export const statementsCommand: Command = {
  name: 'statements',
  help,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'import') return runImport(rest);
    if (sub === 'reconcile') return runReconcile(rest);
    if (sub === 'breaks') return runBreaks(rest);
    if (sub === 'summary') return runSummary(rest);
    if (sub === 'job') return runScheduledJob(rest);
    return usage(sub === undefined ? 'Missing subcommand: import, reconcile, breaks, summary or job.' : `Unknown subcommand "${sub}".`);
  },
};

// Opens what every subcommand needs and closes it after `work`.
async function withDeps<T>(work: (deps: StatementDeps, config: Config) => Promise<T>, migrateFirst = true): Promise<T> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel });
  const clickhouse = createClickHouse(config);
  try {
    if (migrateFirst) await migrateDatabase(config, logger);
    return await work({ clickhouse, database: config.clickhouseDatabase, logger }, config);
  } finally {
    await clickhouse.close();
  }
}

const periodOption = (raw: string | undefined, required: boolean): Period | undefined => {
  if (raw === undefined) return required ? usage('--period is required.') : undefined;
  return parsePeriod(raw) ?? usage(`--period ${JSON.stringify(raw)} is not a date (2026-11-25) or a range FROM..TO.`);
};

const channelOption = (raw: string | undefined): string | undefined => {
  if (raw !== undefined && !/^[^\s]{1,64}$/.test(raw)) return usage('--channel must be 1 to 64 characters without spaces.');
  return raw;
};

async function runImport(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    'statements',
    argv,
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
  const period = periodOption(values.period, false);
  const channel = channelOption(values.channel);
  const path = positionals[0]!;
  return withDeps(async (deps, config) => {
    let result: ImportResult;
    try {
      result = await importStatement(deps, {
        path,
        format,
        channel,
        period,
        dryRun: values['dry-run'],
        skipInvalid: values['skip-invalid'],
        maxBytes: config.statementMaxBytes,
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES')
        throw new PaysentinelError('STATEMENT_REFUSED', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
      throw err;
    }
    // A newly imported file of a closed period is reconciled at once.
    const outcome =
      result.status === 'imported'
        ? await reconcilePeriod(deps, { channel: result.file.channel, period: result.file.period }, { graceMs: config.statementGraceMs, now: new Date() })
        : undefined;
    if (values.json) process.stdout.write(JSON.stringify({ ...resultJson(result), ...(outcome ? { reconciliation: outcomeJson(outcome) } : {}) }) + '\n');
    else {
      printResult(result, path);
      if (outcome) process.stdout.write(formatOutcome(outcome) + '\n');
    }
    return result.status === 'refused' ? 1 : 0;
  }, !values['dry-run']);
}

async function runReconcile(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('statements', argv, { channel: { type: 'string' }, period: { type: 'string' }, json: { type: 'boolean' } });
  const channel = channelOption(values.channel) ?? usage('--channel is required.');
  const period = periodOption(values.period, true)!;
  return withDeps(async (deps, config) => {
    const outcome = await reconcilePeriod(deps, { channel, period }, { graceMs: config.statementGraceMs, now: new Date() });
    process.stdout.write((values.json ? JSON.stringify(outcomeJson(outcome)) : formatOutcome(outcome)) + '\n');
    return outcome.status === 'open' ? 1 : 0;
  });
}

async function runBreaks(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('statements', argv, {
    from: { type: 'string' },
    to: { type: 'string' },
    kind: { type: 'string' },
    channel: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  const now = Date.now();
  const point = (raw: string | undefined, fallback: number, flag: string) => {
    if (raw === undefined) return fallback;
    const p = parsePeriod(raw.includes('..') ? raw : /^\d{4}-\d{2}-\d{2}$/.test(raw) ? raw : `${raw}..2106-01-01`);
    return p?.fromMs ?? usage(`--${flag} ${JSON.stringify(raw)} is not a date or an RFC 3339 time with a zone.`);
  };
  const fromMs = point(values.from, now - 7 * 86_400_000, 'from');
  const toMs = point(values.to, now + 86_400_000, 'to');
  if (fromMs >= toMs) return usage('--from must be before --to.');
  if (values.kind !== undefined && !(breakKinds as readonly string[]).includes(values.kind)) return usage(`--kind must be one of ${breakKinds.join(', ')}.`);
  const limit = numberOption('statements', 'limit', values.limit, 1000, 1);
  const channel = channelOption(values.channel);
  return withDeps(async (deps) => {
    const rows = await queryRows<Record<string, unknown>>(
      deps.clickhouse,
      breaksQuery(deps.database, { fromMs, toMs, kind: values.kind, channel, limit }),
      'read statement breaks',
    );
    if (values.json) {
      for (const r of rows) process.stdout.write(JSON.stringify(breakJson(r)) + '\n');
    } else process.stdout.write(formatBreaks(rows) + '\n');
    return 0;
  });
}

async function runSummary(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('statements', argv, { period: { type: 'string' }, json: { type: 'boolean' } });
  const period = periodOption(values.period, true)!;
  return withDeps(async (deps) => {
    const [runs, breaks, matches] = await Promise.all([
      queryRows<Record<string, unknown>>(deps.clickhouse, summaryRunsQuery(deps.database, period.fromMs, period.toMs), 'read statement runs'),
      queryRows<Record<string, unknown>>(deps.clickhouse, summaryBreaksQuery(deps.database, period.fromMs, period.toMs), 'read statement breaks'),
      queryRows<Record<string, unknown>>(deps.clickhouse, summaryMatchesQuery(deps.database, period.fromMs, period.toMs), 'read statement matches'),
    ]);
    const summary = summarize(runs, breaks, matches);
    process.stdout.write(
      (values.json
        ? JSON.stringify({ period_from: new Date(period.fromMs).toISOString(), period_to: new Date(period.toMs).toISOString(), channels: summary })
        : formatSummary(summary, period)) + '\n',
    );
    return 0;
  });
}

async function runScheduledJob(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('statements', argv, { json: { type: 'boolean' } });
  return withDeps(async (deps, config) => {
    const run = await runStatementsJob(
      { ...deps, statements: { dir: config.statementsDir, graceMs: config.statementGraceMs, maxBytes: config.statementMaxBytes } },
      new Date(),
    );
    if (values.json) process.stdout.write(JSON.stringify({ job: run.job, run_id: run.runId, status: run.status, rows: run.rows }) + '\n');
    else
      process.stdout.write(
        `statements job ${run.status}: ${run.rows} rows (lines imported + periods reconciled), run ` +
          `${run.runId}${config.statementsDir ? '' : ' (STATEMENTS_DIR is empty: nothing imported)'}\n`,
      );
    return 0;
  });
}

function resultJson(r: ImportResult): Record<string, unknown> {
  if (r.status === 'refused')
    return {
      status: r.status,
      file: r.fileName,
      reason: r.reason,
      problem: r.problem ?? null,
      invalid_count: r.invalidCount,
      invalid: r.invalid.map(({ status: _s, ...l }) => l),
    };
  const f = r.file;
  const file = {
    name: f.fileName,
    sha256: f.hash,
    format: f.format,
    channel: f.channel,
    period_from: new Date(f.period.fromMs).toISOString(),
    period_to: new Date(f.period.toMs).toISOString(),
    size_bytes: f.sizeBytes,
    lines_settled: f.linesSettled,
    lines_not_settled: f.linesNotSettled,
    lines_invalid: f.linesInvalid,
    imported_at: f.importedAt.toISOString(),
  };
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
