import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { Partitioners } from 'kafkajs';
import type { Config } from '../config/index.ts';
import { createKafka, ensureTopics } from '../kafka/index.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { produceAsFast } from '../simulator/run.ts';
import { command, createClickHouse, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, quoteString } from '../storage/sql.ts';

export interface IngestBenchOptions {
  count: number;
  partitions: number;
  seed: number;
  /** Skip the ClickHouse Kafka-engine baseline. */
  skipBaseline: boolean;
  /** Skip the run with every role. */
  skipDetection?: boolean;
  /** Processes running the ingest role alone in the first measurement (they share the consumer group). @default 1 */
  processes?: number;
  timeoutMs: number;
  progress: (line: string) => void;
  /**
   * Settings to compare on the same topic: each is a run of the ingest role alone with these
   * environment variables added, all of them once per round, interleaved (rounds 1 by default).
   */
  variants?: IngestVariant[];
  rounds?: number;
}

/** A labelled set of environment variables for `paysentinel start --roles ingest`. */
export interface IngestVariant {
  label: string;
  env: Record<string, string>;
}

/** Parses `LABEL:NAME=VALUE,NAME=VALUE` (the bench's --variant), or returns null. */
export function parseVariant(text: string): IngestVariant | null {
  const m = /^([\w.-]+):((?:[A-Z][A-Z0-9_]*=[^,=]*)(?:,[A-Z][A-Z0-9_]*=[^,=]*)*)$/.exec(text);
  if (!m) return null;
  return { label: m[1]!, env: Object.fromEntries(m[2]!.split(',').map((kv) => kv.split('=') as [string, string])) };
}

export interface IngestBenchResult {
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; clickhouse: string; kafka: string };
  messages: number;
  distinctEvents: number;
  produce: { seconds: number; perSecond: number };
  /** `paysentinel start --roles ingest` in `processes` processes: ingest alone. */
  ingestOnly: PaysentinelRun;
  /** With --variant: every run of each variant, in the order of the rounds (ingestOnly is the first variant's first run). */
  variants: (IngestVariant & { runs: PaysentinelRun[] })[] | null;
  /** `paysentinel start` with every role: ingest while detection (and the jobs) run beside it (null with skipDetection). */
  withDetection: PaysentinelRun | null;
  baseline: { seconds: number; rowsPerSecond: number; rows: number } | null;
  /**
   * The same Kafka engine writing into a migrated payment_events, so that every message also
   * goes through our materialized views (detection's copies, the incremental rates): the
   * like-for-like figure beside the plain baseline, never instead of it (null with skipBaseline).
   */
  baselineWithViews: { seconds: number; rowsPerSecond: number; rows: number } | null;
  /** ingestOnly.eventsPerSecond / baseline.rowsPerSecond. */
  ratio: number | null;
  /** ingestOnly.eventsPerSecond / baselineWithViews.rowsPerSecond. */
  ratioToViews: number | null;
  /** withDetection.eventsPerSecond / baseline.rowsPerSecond (null when either was skipped). */
  ratioWithDetection: number | null;
}

export interface PaysentinelRun {
  roles: string;
  processes: number;
  seconds: number;
  eventsPerSecond: number;
  steadySeconds: number;
  steadyEventsPerSecond: number;
  /** Peak resident memory of each process (MiB). */
  peakRssMiB: number[];
}

/** Reads a /proc status field in kB (VmHWM = peak resident set). */
function procStatusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function count(clickhouse: ClickHouseClient, table: string): Promise<number> {
  try {
    return Number((await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${table}`))[0]?.n ?? 0);
  } catch {
    return 0;
  }
}

/** Polls `probe` until it reaches `target`, returning when the first non-zero value and the target were seen. */
async function waitForCount(
  probe: () => Promise<number>,
  target: number,
  timeoutMs: number,
  progress: (line: string) => void,
  label: string,
  onTick?: () => void,
) {
  const started = performance.now();
  let first: number | null = null;
  let lastReport = started;
  for (;;) {
    const n = await probe();
    onTick?.();
    const now = performance.now();
    if (n > 0 && first === null) first = now;
    if (n >= target) return { done: now, first: first ?? now };
    if (now - started > timeoutMs) throw new Error(`${label}: only ${n} of ${target} rows after ${Math.round(timeoutMs / 1000)} s`);
    if (now - lastReport > 2000) {
      progress(`${label}: ${n.toLocaleString('en-US')} / ${target.toLocaleString('en-US')} rows (${Math.round((100 * n) / target)}%)`);
      lastReport = now;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Produces `count` simulator events to a fresh topic, then measures (1) `paysentinel start`
 * consuming them into ClickHouse and (2) ClickHouse's own Kafka engine + materialized view
 * consuming the same topic into a plain table. Both end to end, one after the other.
 */
export async function runIngestBench(config: Config, logger: Logger, options: IngestBenchOptions): Promise<IngestBenchResult> {
  const id = randomUUID().slice(0, 8);
  const topic = `bench-${id}.payments.events`;
  const dlq = `bench-${id}.payments.events.dlq`;
  const database = `paysentinel_bench_${id}`;
  const db = ident(database);
  const kafka = createKafka(config, logger, '-bench');
  const admin = kafka.admin();
  const clickhouse = createClickHouse(config, { requestTimeoutMs: 120_000 });
  const { progress } = options;
  /** The databases made, dropped at the end (a paysentinel run's as soon as it is measured, or at the end if it fails). */
  const databases: string[] = [];
  await admin.connect();
  try {
    await ensureTopics(
      admin,
      [topic, dlq].map((t) => ({ topic: t, numPartitions: options.partitions, replicationFactor: config.topicReplication })),
    );

    // 1. Load: the topic is filled before either consumer starts, so both read the same backlog.
    progress(`producing ${options.count.toLocaleString('en-US')} events to ${topic}`);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const rate = 20_000;
    const generator = createTrafficGenerator({
      seed: options.seed,
      rate,
      durationMs: Math.ceil((options.count / rate) * 1000),
      startMs: Date.now() - 3_600_000,
    });
    const produced = await produceAsFast({ producer, topic, generator, count: options.count, batchSize: 2000, concurrency: 4 });
    await producer.disconnect();
    progress(`produced ${produced.produced} messages (${produced.distinctEvents} distinct events) in ${(produced.elapsedMs / 1000).toFixed(1)} s`);

    // 2. paysentinel, as a user runs it: the ingest role alone, then every role. Each run has
    //    its own consumer group and database, so both read the whole topic.
    const runPaysentinel = async (
      label: string,
      roles: string | undefined,
      processes: number,
      extraEnv: Record<string, string> = {},
    ): Promise<PaysentinelRun> => {
      const runId = `${id}_${label.replace(/\W+/g, '_')}`;
      const database = `paysentinel_bench_${runId}`;
      databases.push(database);
      progress(`${label}: paysentinel start${roles ? ` --roles ${roles}` : ''} in ${processes} process(es), until every event is stored`);
      const env = {
        ...process.env,
        KAFKA_EVENTS_TOPIC: topic,
        KAFKA_DLQ_TOPIC: dlq,
        KAFKA_GROUP_ID: `bench-${runId}`,
        CLICKHOUSE_DATABASE: database,
        HTTP_PORT: '0',
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
        ...extraEnv,
      };
      // The schema is in place before the clock starts, as the baselines' tables are before
      // theirs: what is timed is a pipeline started on its database, as after a restart.
      await migrate(clickhouse, database, silentLogger);
      const startedAt = performance.now();
      const args = ['bin/paysentinel.mjs', 'start', ...(roles ? ['--roles', roles] : [])];
      const children = Array.from({ length: processes }, () =>
        spawn(process.execPath, args, { cwd: extraEnv.BENCH_CHECKOUT ?? new URL('..', import.meta.url), env, stdio: ['ignore', 'ignore', 'inherit'] }),
      );
      const peakKb = children.map(() => 0);
      const watchMemory = () => children.forEach((c, i) => (peakKb[i] = Math.max(peakKb[i]!, procStatusKb(c.pid!, 'VmHWM'))));
      const timing = await waitForCount(
        () => count(clickhouse, `${ident(database)}.payment_events`),
        produced.distinctEvents,
        options.timeoutMs,
        progress,
        label,
        watchMemory,
      );
      watchMemory();
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
      // Dropped at once: its background merges would otherwise run beside the next measurement.
      await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`);
      const seconds = (timing.done - startedAt) / 1000;
      const steadySeconds = (timing.done - timing.first) / 1000;
      return {
        roles: roles ?? 'ingest,detect,jobs',
        processes,
        seconds,
        eventsPerSecond: produced.distinctEvents / seconds,
        steadySeconds,
        steadyEventsPerSecond: produced.distinctEvents / steadySeconds,
        peakRssMiB: peakKb.map((kb) => kb / 1024),
      };
    };
    let variants: IngestBenchResult['variants'] = null;
    if (options.variants?.length) {
      variants = options.variants.map((v) => ({ ...v, runs: [] }));
      for (let round = 1; round <= (options.rounds ?? 1); round++)
        for (const v of variants) v.runs.push(await runPaysentinel(`ingest role [${v.label}] round ${round}`, 'ingest', options.processes ?? 1, v.env));
    }
    const ingestOnly = variants ? variants[0]!.runs[0]! : await runPaysentinel('ingest role', 'ingest', options.processes ?? 1);
    const withDetection = options.skipDetection ? null : await runPaysentinel('all roles', undefined, 1);

    // 3. Baseline: ClickHouse's Kafka engine -> materialized view -> MergeTree. It does no
    //    validation, no dead-lettering and no dedup, so it stores every message (redeliveries too).
    let baseline: IngestBenchResult['baseline'] = null;
    let baselineWithViews: IngestBenchResult['baselineWithViews'] = null;
    if (!options.skipBaseline) {
      const broker = config.kafkaBrokers[0]!;
      /** A Kafka-engine table on the topic in its own consumer group, and a view from it into `target`, timed until `target` holds every message. */
      const kafkaEngine = async (label: string, queueDb: string, target: string, select: string) => {
        const q = ident(queueDb);
        await command(
          clickhouse,
          `CREATE TABLE ${q}.kafka_queue (event_id String, occurred_at String, type String, status String, order_id String, attempt Nullable(UInt8), ` +
            `transaction_id Nullable(String), amount_minor UInt64, currency String, channel String, merchant_id String, ` +
            `user_id Nullable(String), device_id Nullable(String), ip Nullable(String), failure_code Nullable(String), ` +
            `source Nullable(String)) ENGINE = Kafka(${quoteString(broker)}, ${quoteString(topic)}, ` +
            `${quoteString(`ch-bench-${queueDb}`)}, 'JSONEachRow')`,
        );
        const started = performance.now();
        await command(clickhouse, `CREATE MATERIALIZED VIEW ${q}.kafka_mv TO ${target} AS ${select} FROM ${q}.kafka_queue`);
        const b = await waitForCount(() => count(clickhouse, target), produced.produced, options.timeoutMs, progress, label);
        const seconds = (b.done - started) / 1000;
        await command(clickhouse, `DROP TABLE ${q}.kafka_mv`);
        await command(clickhouse, `DROP TABLE ${q}.kafka_queue`);
        return { seconds, rowsPerSecond: produced.produced / seconds, rows: produced.produced };
      };
      progress('running the ClickHouse Kafka-engine baseline on the same topic (into a plain table)');
      await command(clickhouse, `CREATE DATABASE IF NOT EXISTS ${db}`);
      await command(
        clickhouse,
        `CREATE TABLE ${db}.kafka_events (event_id String, occurred_at DateTime('UTC'), type String, status String, order_id String, attempt ` +
          `Nullable(UInt8), transaction_id Nullable(String), amount_minor UInt64, currency String, channel String, ` +
          `merchant_id String, user_id Nullable(String), device_id Nullable(String), ip Nullable(String), failure_code ` +
          `Nullable(String), source Nullable(String)) ENGINE = MergeTree PARTITION BY toYYYYMM(occurred_at) ORDER BY ` +
          `(occurred_at, event_id)`,
      );
      baseline = await kafkaEngine(
        'kafka engine',
        database,
        `${db}.kafka_events`,
        `SELECT event_id, parseDateTimeBestEffort(occurred_at) AS occurred_at, type, status, order_id, attempt, transaction_id, amount_minor, ` +
          `currency, channel, merchant_id, user_id, device_id, ip, failure_code, source`,
      );

      // The same into payment_events as migrated, so its views run on every message as they do
      // for ingest. Columns the messages lack: no milliseconds (the alias occurred_at hides the text), no extra fields,
      // partition 0 and the row's number as the offset (18.16's view on a Kafka table sees no
      // virtual column such as _partition or _offset).
      progress('running the Kafka-engine baseline into a migrated payment_events (with our views)');
      const viewsDatabase = `${database}_views`;
      databases.push(viewsDatabase);
      await migrate(clickhouse, viewsDatabase, silentLogger);
      baselineWithViews = await kafkaEngine(
        'kafka engine with our views',
        viewsDatabase,
        `${ident(viewsDatabase, 'payment_events')}`,
        `SELECT event_id, parseDateTimeBestEffort(occurred_at) AS occurred_at, toUInt16(0) AS occurred_ms, ` +
          `CAST(type AS Enum8('payment' = 1, 'refund' = 2)) AS type, ` +
          `CAST(status AS Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4)) AS status, order_id, attempt, transaction_id, ` +
          `amount_minor, currency, channel, merchant_id, user_id, device_id, ip, failure_code, source, '' AS extra, toUInt16(0) AS kafka_partition, ` +
          `toUInt64(rowNumberInAllBlocks()) AS kafka_offset, now() AS ingested_at`,
      );
    }

    const version = (await queryRows<{ v: string }>(clickhouse, 'SELECT version() AS v'))[0]?.v ?? '?';
    const cluster = await admin.describeCluster();
    return {
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        node: process.version,
        clickhouse: version,
        kafka: `${cluster.brokers.length} broker(s) at ${config.kafkaBrokers.join(',')}`,
      },
      messages: produced.produced,
      distinctEvents: produced.distinctEvents,
      produce: { seconds: produced.elapsedMs / 1000, perSecond: produced.produced / (produced.elapsedMs / 1000) },
      ingestOnly,
      variants,
      withDetection,
      baseline,
      baselineWithViews,
      ratio: baseline ? ingestOnly.eventsPerSecond / baseline.rowsPerSecond : null,
      ratioToViews: baselineWithViews ? ingestOnly.eventsPerSecond / baselineWithViews.rowsPerSecond : null,
      ratioWithDetection: baseline && withDetection ? withDetection.eventsPerSecond / baseline.rowsPerSecond : null,
    };
  } finally {
    for (const d of [database, ...databases]) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(d)}`).catch(() => {});
    await admin.deleteTopics({ topics: [topic, dlq] }).catch(() => {});
    await admin.disconnect();
    await clickhouse.close();
  }
}
