import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { formatRatesTable, parseTime } from './format.ts';
import { bucketSizes, dimensions, type BucketSize, type Dimension } from './queries.ts';
import { computeRates, RATES_JOB, run as runRates } from './rates.ts';
import { RETRY_POLICY_JOB, run as runRetryPolicy } from './retry-policy.ts';
import { RECONCILE_JOB, run as runReconcile } from './reconcile.ts';
import { createKafkaPolicyPublisher } from './retry-policy-kafka.ts';
import { createKafka } from '../kafka/index.ts';
import { BASELINES_JOB, run as runBaselines } from './baselines.ts';
import { DAILY_REPORT_JOB, run as runDailyReport } from './daily-report.ts';

const JOBS = [RATES_JOB, RETRY_POLICY_JOB, RECONCILE_JOB, BASELINES_JOB, DAILY_REPORT_JOB].join(', ');

const help = `Usage:
  paysentinel analytics rates --from T --to T [--by channel|merchant|failure_code] [--bucket 5m|hour|day] [--json]
  paysentinel analytics run rates [--from T] [--to T] [--json]
  paysentinel analytics run retry-policy [--from T] [--to T] [--no-publish] [--json]
  paysentinel analytics run reconcile [--json]
  paysentinel analytics run baselines [--json]
  paysentinel analytics run daily-report [--from T] [--to T] [--json]

rates     Prints failure, timeout, retry and refund rates of the payment attempts whose first
          event occurred in [--from, --to), computed now in ClickHouse from payment_events.
          An attempt's outcome is its latest status, so a late callback counts wherever it
          arrives. Definitions: analytics/DEFINITIONS.md.
run JOB   Runs a scheduled job once, by hand, and records it in job_runs. Jobs: ${JOBS}.
          Without --from it catches up from the end of the last successful run (and restates
          the last hour); with --from/--to it recomputes that range, e.g. to backfill. Only
          buckets that have ended are written; re-running a bucket replaces it.
          retry-policy tunes the retry policy from the evidence of [--from, --to) (default: the
          14 days before the current hour), stores it in retry_policy and publishes it to the
          Kafka topic payments.retry-policy (not with --no-publish). See "paysentinel policy".
          reconcile re-checks the attempts of the last 24 hours: still processing after 15
          minutes, final status changed later, callback delay percentiles per channel.
          baselines computes the failure-rate baselines per channel and device, per hour of day
          and over all hours, from the 7 days before the current hour (at least 100 decided
          attempts each), and stores them in failure_baselines.
          daily-report writes the Markdown report of [--from, --to) (whole hours; default: the
          previous UTC day; --from alone: 24 hours) against the period before it to REPORTS_DIR
          and prints it. It reads the hour buckets the rates job stored: after a backfill of
          past days, run "analytics run rates --from --to" first.

Options:
  --from T            Start (inclusive). T is RFC 3339 with a zone (2026-11-25T10:00:00Z,
                      2026-11-25T18:00:00+08:00), a date (2026-11-25 = midnight UTC), now,
                      or now-<duration> (now-1h, now-30m, now-2d).
  --to T              End (exclusive). rates: required; run: defaults to now.
  --by DIMENSION      Break down by channel, merchant or failure_code (the outcome's code;
                      '(none)' for succeeded and processing attempts). Default: no breakdown.
  --bucket SIZE       Also split by time bucket of the attempt's first event: 5m, hour, day (UTC).
  --json              One JSON object per line instead of a table.

Examples:
  paysentinel analytics rates --from now-1h --to now --by channel
  paysentinel analytics rates --from 2026-11-25 --to 2026-11-26 --bucket hour --json
  paysentinel analytics run rates --from 2026-11-01 --to 2026-11-25
  paysentinel analytics run retry-policy --from now-7d
  paysentinel analytics run daily-report --from 2026-11-25`;

function time(flag: string, raw: string | undefined, now: Date): Date | undefined {
  if (raw === undefined) return undefined;
  const t = parseTime(raw, now);
  if (t === null) {
    throw new PaysentinelError('USAGE', `--${flag} ${JSON.stringify(raw)} is not a time: use RFC 3339 with a zone (2026-11-25T10:00:00Z), a date, now or now-1h.\nRun "paysentinel analytics --help" for usage.`);
  }
  return t;
}

function usage(message: string): never {
  throw new PaysentinelError('USAGE', `${message}\nRun "paysentinel analytics --help" for usage.`);
}

export const analyticsCommand: Command = {
  name: 'analytics',
  summary: 'Payment rates (analytics rates) and scheduled jobs run by hand (analytics run rates)',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      'analytics',
      argv,
      { from: { type: 'string' }, to: { type: 'string' }, by: { type: 'string' }, bucket: { type: 'string' }, json: { type: 'boolean' }, 'no-publish': { type: 'boolean' } },
      true,
    );
    const now = new Date();
    const from = time('from', values.from, now);
    const to = time('to', values.to, now);
    const [sub, job, ...extra] = positionals;
    if (extra.length > 0) usage(`Unexpected arguments: ${extra.join(' ')}`);
    if (from && to && from.getTime() >= to.getTime()) usage('--from must be before --to.');

    if (sub === 'rates') {
      if (job !== undefined) usage(`Unexpected argument: ${job}`);
      if (!from || !to) usage('analytics rates needs --from and --to.');
      const by = values.by ?? 'all';
      if (by !== 'all' && !(dimensions as readonly string[]).includes(by)) usage(`--by ${JSON.stringify(by)}: use channel, merchant or failure_code.`);
      if (values.bucket !== undefined && !(values.bucket in bucketSizes)) usage(`--bucket ${JSON.stringify(values.bucket)}: use 5m, hour or day.`);
      const config = loadConfig();
      const clickhouse = createClickHouse(config);
      try {
        const rows = await computeRates(
          { clickhouse, database: config.clickhouseDatabase },
          { from, to, by: by as Dimension, bucket: values.bucket as BucketSize | undefined },
        );
        if (values.json) {
          for (const r of rows) process.stdout.write(JSON.stringify({ ...r, bucketStart: r.bucketStart.toISOString(), by }) + '\n');
        } else {
          process.stdout.write(`Payment rates ${from.toISOString()} .. ${to.toISOString()} (attempts by first event; outcome = latest status)\n\n`);
          process.stdout.write(formatRatesTable(rows, { by, bucketed: values.bucket !== undefined }) + '\n');
        }
        return 0;
      } finally {
        await clickhouse.close();
      }
    }

    if (sub === 'run' && job === RETRY_POLICY_JOB) {
      if (values.by !== undefined || values.bucket !== undefined) usage('--by and --bucket apply to "analytics rates" only.');
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      const clickhouse = createClickHouse(config);
      const publisher = values['no-publish'] ? undefined : createKafkaPolicyPublisher(createKafka(config, logger), { replicationFactor: config.topicReplication });
      try {
        await migrate(clickhouse, config.clickhouseDatabase, logger);
        const result = await runRetryPolicy({ clickhouse, database: config.clickhouseDatabase, logger, publisher }, now, { from, to });
        if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
        else {
          process.stdout.write(
            `${result.job}: ${result.status}, evidence ${result.from.toISOString()} .. ${result.to.toISOString()}, ${result.rows} entries written${publisher ? ' and published' : ''} (run ${result.runId}). See "paysentinel policy show" and "paysentinel policy diff".\n`,
          );
        }
        return 0;
      } finally {
        await publisher?.close();
        await clickhouse.close();
      }
    }

    if (sub === 'run' && job === RECONCILE_JOB) {
      if (values.by !== undefined || values.bucket !== undefined || from || to || values['no-publish']) usage('analytics run reconcile takes no options but --json.');
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      const clickhouse = createClickHouse(config);
      try {
        await migrate(clickhouse, config.clickhouseDatabase, logger);
        const result = await runReconcile({ clickhouse, database: config.clickhouseDatabase, logger }, now);
        if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
        else process.stdout.write(`${result.job}: ${result.status}, attempts first seen ${result.from.toISOString()} .. ${result.to.toISOString()}, ${result.rows} rows written (run ${result.runId}).\n`);
        return 0;
      } finally {
        await clickhouse.close();
      }
    }

    if (sub === 'run' && job === BASELINES_JOB) {
      if (values.by !== undefined || values.bucket !== undefined || from || to || values['no-publish']) usage('analytics run baselines takes no options but --json.');
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      const clickhouse = createClickHouse(config);
      try {
        await migrate(clickhouse, config.clickhouseDatabase, logger);
        const result = await runBaselines({ clickhouse, database: config.clickhouseDatabase, logger }, now);
        if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
        else process.stdout.write(`${result.job}: ${result.status}, attempts first seen ${result.from.toISOString()} .. ${result.to.toISOString()}, ${result.rows} baselines written (run ${result.runId}).\n`);
        return 0;
      } finally {
        await clickhouse.close();
      }
    }

    if (sub === 'run' && job === DAILY_REPORT_JOB) {
      if (values.by !== undefined || values.bucket !== undefined || values['no-publish']) usage('analytics run daily-report takes --from, --to and --json only.');
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      const clickhouse = createClickHouse(config);
      try {
        await migrate(clickhouse, config.clickhouseDatabase, logger);
        let result;
        try {
          result = await runDailyReport({ clickhouse, database: config.clickhouseDatabase, logger, reportsDir: config.reportsDir }, now, { from, to });
        } catch (err) {
          if (err instanceof RangeError) usage(err.message);
          throw err;
        }
        if (values.json) process.stdout.write(JSON.stringify({ ...result, markdown: undefined }) + '\n');
        else process.stdout.write(`${result.markdown}\n(written to ${result.path})\n`);
        return 0;
      } finally {
        await clickhouse.close();
      }
    }

    if (sub === 'run') {
      if (values['no-publish']) usage('--no-publish applies to "analytics run retry-policy" only.');
      if (job !== RATES_JOB) usage(job === undefined ? `analytics run needs a job name: ${JOBS}.` : `Unknown job ${JSON.stringify(job)}: the jobs are: ${JOBS}.`);
      if (values.by !== undefined || values.bucket !== undefined) usage('--by and --bucket apply to "analytics rates" only.');
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      const clickhouse = createClickHouse(config);
      try {
        await migrate(clickhouse, config.clickhouseDatabase, logger);
        const result = await runRates({ clickhouse, database: config.clickhouseDatabase, logger }, now, { from, to });
        if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
        else {
          process.stdout.write(
            `${result.job}: ${result.status}, buckets ${result.from.toISOString()} .. ${result.to.toISOString()}, ${result.rows} rows written (run ${result.runId}).\n`,
          );
        }
        return 0;
      } finally {
        await clickhouse.close();
      }
    }

    return usage(sub === undefined ? 'Missing subcommand: rates or run.' : `Unknown subcommand ${JSON.stringify(sub)}: use rates or run.`);
  },
};
