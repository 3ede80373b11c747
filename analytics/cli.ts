import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse, JOB_STATEMENT_TIMEOUT_MS, resolveSpillBytes, serverStopSec } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { formatRatesTable, parseTime } from './format.ts';
import { bucketSizes, dimensions, type BucketSize, type Dimension } from './queries.ts';
import { computeRates } from './rates.ts';
import { RETRY_POLICY_JOB } from './retry-policy.ts';
import { createKafkaPolicyPublisher } from './retry-policy-kafka.ts';
import { createKafka } from '../kafka/index.ts';
import { analyticsJobs } from './schedule.ts';

const JOBS = analyticsJobs
  .filter((j) => j.byHand)
  .map((j) => j.name)
  .join(', ');

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
          rates: without --from it catches up from the end of the last successful run and
          restates the buckets of the orders stored since; with --from/--to it recomputes that
          range hour by hour (in slices of at most 300,000 events), with progress, e.g. to
          backfill. Only buckets that have ended are written; re-running a bucket replaces it.
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
    throw new PaysentinelError(
      'USAGE',
      `--${flag} ${JSON.stringify(raw)} is not a time: use RFC 3339 with a zone (2026-11-25T10:00:00Z), a date, now or now-1h.\nRun "paysentinel ` +
        `analytics --help" for usage.`,
    );
  }
  return t;
}

function usage(message: string): never {
  throw new PaysentinelError('USAGE', `${message}\nRun "paysentinel analytics --help" for usage.`);
}

export const analyticsCommand: Command = {
  name: 'analytics',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      'analytics',
      argv,
      {
        from: { type: 'string' },
        to: { type: 'string' },
        by: { type: 'string' },
        bucket: { type: 'string' },
        json: { type: 'boolean' },
        'no-publish': { type: 'boolean' },
      },
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

    if (sub === 'run') {
      const entry = analyticsJobs.find((j) => j.name === job);
      const manual = entry?.byHand;
      if (!entry || !manual)
        usage(job === undefined ? `analytics run needs a job name: ${JOBS}.` : `Unknown job ${JSON.stringify(job)}: the jobs are: ${JOBS}.`);
      if (values.by !== undefined || values.bucket !== undefined) usage('--by and --bucket apply to "analytics rates" only.');
      if (!manual.window && (from || to)) usage(`analytics run ${entry.name} takes no --from or --to.`);
      if (!manual.publishes && values['no-publish']) usage(`--no-publish applies to "analytics run ${RETRY_POLICY_JOB}" only.`);
      const config = loadConfig();
      const logger = createLogger({ level: config.logLevel });
      // As the scheduled runs' statements: minutes allowed, large groupings spilled to disk (at the CLI's priority, on every core).
      const clickhouse = createClickHouse(config, {
        requestTimeoutMs: JOB_STATEMENT_TIMEOUT_MS,
        maxExecutionSec: serverStopSec(JOB_STATEMENT_TIMEOUT_MS),
        spillBytes: (await resolveSpillBytes(config)) ?? undefined,
      });
      const publisher =
        manual.publishes && !values['no-publish']
          ? createKafkaPolicyPublisher(createKafka(config, logger), { replicationFactor: config.topicReplication })
          : undefined;
      try {
        await migrateDatabase(config, logger);
        let result;
        try {
          result = await manual.run({ clickhouse, database: config.clickhouseDatabase, logger, publisher, reportsDir: config.reportsDir }, now, { from, to });
        } catch (err) {
          // An impossible window (e.g. a report period that is not whole hours) is a usage error.
          if (err instanceof RangeError) usage(err.message);
          throw err;
        }
        process.stdout.write((values.json ? JSON.stringify(manual.json?.(result) ?? result) : manual.text(result, publisher !== undefined)) + '\n');
        return 0;
      } finally {
        await publisher?.close();
        await clickhouse.close();
      }
    }

    return usage(sub === undefined ? 'Missing subcommand: rates or run.' : `Unknown subcommand ${JSON.stringify(sub)}: use rates or run.`);
  },
};
