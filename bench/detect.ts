import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { Partitioners } from 'kafkajs';
import { quantile } from 'simple-statistics';
import type { Config } from '../config/index.ts';
import { createKafka, ensureTopics } from '../kafka/index.ts';
import type { Logger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { createCaseBook } from '../cases/index.ts';
import { createDetector } from '../detection/detector.ts';
import { silentLogger } from '../log/index.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { writeBacklog, writeSimulatedHistory } from './backlog.ts';
import { ident, sql } from '../storage/sql.ts';
import { eventsByPosition } from '../storage/copies.ts';
import { run as runRates } from '../analytics/rates.ts';
import { run as runReconcile } from '../analytics/reconcile.ts';

export interface DetectBenchOptions {
  rate: number;
  durationMs: number;
  attacks: number;
  /**
   * Stored events written before the run, spread over the 15 minutes before it (the
   * channel context's window): the state after a quarter of an hour of sustained traffic. 0: none.
   */
  history?: number;
  /**
   * Seeds the rates of the history before the pipeline starts, with the rates job run by
   * hand (twice) (as an installation with that history would already have them), so the measured window
   * shows the routine runs. false: the scheduled runs catch the history up themselves. @default true
   */
  seedRates?: boolean;
  progress: (line: string) => void;
}

export type Latency = { p50: number; p95: number; p99: number; max: number };

/** Attacks of one rule: how many were sent and detected, and their latencies. */
export interface RuleLatency {
  attacks: number;
  detected: number;
  latencyMs: Latency | null;
  /** Every detected attack's latency (ms), in the order the attacks were sent. */
  latenciesMs: number[];
}

export interface DetectBenchResult {
  rate: number;
  /** Stored events written before the run (--history). */
  history: number;
  backgroundEvents: number;
  /** Both kinds together. */
  attacks: number;
  detected: number;
  latencyMs: Latency | null;
  /** Per rule: card testing (an IP, the fastest entity type to screen) and duplicate charges (an order, whose windows are 24 hours). */
  byRule: Record<'ip_amount_probing' | 'duplicate_charge', RuleLatency>;
  /** The scheduled jobs' runs during the bench (from job_runs); a run still going counts its time so far. */
  jobs: JobRunsSummary[];
  /** Every scheduled run that started once the pipeline was up, in start order. */
  runs: JobRunRecord[];
  /** The rates of the history seeded before the pipeline started (seedRates); null when not. */
  seededRates: { seconds: number; status: string } | null;
  /** The reconcile job's first run by hand before the pipeline started, which rebuilds its records from the history (with seedRates); null when not. */
  seededReconcile: { seconds: number; status: string } | null;
  /** The latest complete 5-minute bucket when the traffic stopped, from the pipeline's /metrics; null before one is complete. */
  ratesBuckets: RatesFreshness | null;
}

/** One scheduled job run, from job_runs. */
export interface JobRunRecord {
  job: string;
  startedAt: string;
  /** Whole seconds (job_runs keeps seconds); a run still going when the bench stopped counts its time so far. */
  seconds: number;
  status: 'ok' | 'failed' | 'running';
  /** The run started before the traffic did (while the pipeline was getting ready). */
  beforeTraffic: boolean;
  error: string;
}

/**
 * How current the rates were when the traffic stopped. A 5-minute bucket is complete once it has
 * ended and the job has written it from every event stored by then; `ageSeconds` is what
 * paysentinel_rates_complete_bucket_age_seconds showed (now minus the end of the latest complete
 * bucket: 0-300 s even when the job keeps up, since a bucket closes every 5 minutes);
 * `behindSeconds` is how long the latest closed bucket had been waiting to be complete (0 when it was).
 */
export interface RatesFreshness {
  completeUntil: string;
  ageSeconds: number;
  latestClosedEnd: string;
  behindSeconds: number;
  /** From the end of the latest complete bucket to the end of the rates run that completed it. */
  writtenAfterSeconds: number | null;
}

/** One job's runs: how many, how many failed, and their durations in seconds (job_runs keeps whole seconds). */
export interface JobRunsSummary {
  job: string;
  runs: number;
  failed: number;
  p50Seconds: number;
  maxSeconds: number;
}

/** The runs the pipeline's scheduler recorded in `database` since `sinceMs`, per job and one by one. */
async function readJobRuns(config: Config, database: string, sinceMs: number, trafficMs: number): Promise<Pick<DetectBenchResult, 'jobs' | 'runs'>> {
  const clickhouse = createClickHouse(config);
  const runs = ident(database, 'job_runs');
  try {
    const rows = await queryRows<{ job: string; run_id: string; status: JobRunRecord['status']; started: number; d: number; error: string }>(
      clickhouse,
      sql`SELECT job, run_id, toString(status) AS status, toUInt32(started_at) AS started,
  toInt64(toUInt32(ifNull(finished_at, now()))) - toInt64(toUInt32(started_at)) AS d, error
FROM ${runs} FINAL WHERE started_at >= toDateTime(${Math.floor(sinceMs / 1000)}, 'UTC') ORDER BY run_id`,
      'read job runs',
    );
    const list: JobRunRecord[] = rows.map((r) => ({
      job: r.job,
      startedAt: new Date(Number(r.started) * 1000).toISOString(),
      seconds: Number(r.d),
      status: r.status,
      beforeTraffic: Number(r.started) * 1000 < Math.floor(trafficMs / 1000) * 1000,
      error: r.error,
    }));
    const jobs = [...new Set(list.map((r) => r.job))].sort().map((job) => {
      const of = list.filter((r) => r.job === job);
      const d = of.map((r) => r.seconds).sort((a, b) => a - b);
      return { job, runs: of.length, failed: of.filter((r) => r.status === 'failed').length, p50Seconds: quantile(d, 0.5), maxSeconds: d[d.length - 1]! };
    });
    return { jobs, runs: list };
  } finally {
    await clickhouse.close();
  }
}

/** The rates' freshness from the pipeline's /metrics and, for the bucket that made it, job_runs. */
async function readRatesFreshness(config: Config, database: string, metricsUrl: string): Promise<RatesFreshness | null> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  const until = value('paysentinel_rates_complete_until_timestamp_seconds');
  const age = value('paysentinel_rates_complete_bucket_age_seconds');
  if (until === null || age === null) return null;
  const nowSec = until + age;
  const latestClosed = Math.floor(nowSec / 300) * 300;
  const clickhouse = createClickHouse(config);
  try {
    // The first successful run whose window ends at that bucket's end.
    const [row] = await queryRows<{ n: string; d: number }>(
      clickhouse,
      sql`SELECT count() AS n, min(toInt64(toUInt32(assumeNotNull(finished_at)))) - ${until} AS d
FROM ${ident(database, 'job_runs')} FINAL WHERE job = 'rates' AND status = 'ok' AND window_to = toDateTime(${until}, 'UTC')`,
      'read the run that completed the bucket',
    );
    return {
      completeUntil: new Date(until * 1000).toISOString(),
      ageSeconds: age,
      latestClosedEnd: new Date(latestClosed * 1000).toISOString(),
      behindSeconds: until >= latestClosed ? 0 : nowSec - latestClosed,
      writtenAfterSeconds: row && Number(row.n) > 0 ? Number(row.d) : null,
    };
  } finally {
    await clickhouse.close();
  }
}

const summary = (values: number[]): Latency | null => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? { p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1]! } : null;
};

/**
 * Detection latency under load: background simulator traffic at `rate` events/s and, every few
 * seconds, two attacks: a card-testing burst from a fresh IP, whose 15th attempt is the one
 * that makes ip_amount_probing's conditions true (15 attempts, 15 amounts, all declined), and a
 * fresh order whose second attempt also succeeds (duplicate_charge). Latency = from Kafka
 * acknowledging the triggering event to the case arriving on the cases topic.
 */
export async function runDetectBench(config: Config, logger: Logger, options: DetectBenchOptions): Promise<DetectBenchResult> {
  const id = randomUUID().slice(0, 8);
  const topics = { events: `bench-${id}.payments.events`, dlq: `bench-${id}.payments.events.dlq`, cases: `bench-${id}.payments.cases` };
  const database = `paysentinel_bench_${id}`;
  const kafka = createKafka(config, logger, '-bench');
  const admin = kafka.admin();
  await admin.connect();
  let seededRates: DetectBenchResult['seededRates'] = null;
  let seededReconcile: DetectBenchResult['seededReconcile'] = null;
  /** The history's last event time; its windows are full only up to there. */
  let historyEndMs: number | null = null;
  if (options.history) {
    const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
    try {
      await migrate(clickhouse, database, silentLogger);
      const nowMs = Date.now();
      historyEndMs = nowMs;
      let next = 0;
      // Written as if long ago, so the pipeline does not take them for new rows; their event
      // times fill the feature windows every tick reads.
      await writeSimulatedHistory(createClickHouseHttp(config, { timeoutMs: 300_000 }), database, {
        events: options.history,
        nowMs,
        spreadMs: 900_000,
        ingestedAtMs: nowMs - 3_600_000,
        onProgress: (written) => {
          if (written >= next) options.progress(`history: ${written} of ${options.history} events written`);
          while (next <= written) next += Math.max(1, Math.floor(options.history! / 10));
        },
      });
      // The history's Kafka positions are made up (offsets from 0 in each partition), and the
      // fresh topic's traffic takes the same offsets: every tick would read the history as rows
      // above its watermark, only to drop them by write time. In a deployment they sit below the
      // traffic's offsets, where ticks do not read them, so they are left out of the copy that
      // ticks read by position (only ticks read it).
      await command(clickhouse, sql`TRUNCATE TABLE ${eventsByPosition(database)}`, 'truncate the history positions');
      if (options.seedRates ?? true) {
        // The rates job by hand, as "paysentinel analytics run rates" runs it (no time budget): it
        // builds the history's items newest first, in slices, and writes its buckets.
        options.progress('history: seeding its rates with the rates job run by hand (analytics run rates), twice');
        const started = performance.now();
        let r = await runRates({ clickhouse, database, logger: silentLogger }, new Date());
        // A first run takes everything stored before it as history and leaves its cursor the
        // changes overlap (15 s) before its start, so the history written in those last seconds
        // is read again as changes by the next run. An installation that lived through that
        // history read it minute by minute; a second run by hand does that catching up here,
        // so the first scheduled run of the measured window sees only the window's traffic.
        if (r.status === 'ok') r = await runRates({ clickhouse, database, logger: silentLogger }, new Date());
        seededRates = { seconds: (performance.now() - started) / 1000, status: r.status };
        options.progress(`history: rates seeded in ${seededRates.seconds.toFixed(1)} s`);
        // The change log stamps each row with the server's clock at its insert: the history's rows
        // say "stored a minute ago", where in a deployment they are a quarter of an hour old. The
        // requery job would then take every history order for a late report and read them all
        // by key on its first incremental run (minutes of work in the measured window that a
        // deployment never does). Its readers read only recent stamps (rates from its cursor,
        // now past the history; requery's late reports), so the history is left out of it.
        await command(clickhouse, sql`TRUNCATE TABLE ${ident(database, 'payment_changes')}`, 'truncate the history change log');
        // The reconcile job's first run rebuilds its attempt records from the window's events; an
        // installation that lived through the history has them, and its runs update them from the
        // changes. One run by hand ("paysentinel analytics run reconcile") does that rebuild here.
        const reconcileStarted = performance.now();
        const rr = await runReconcile({ clickhouse, database, logger: silentLogger }, new Date());
        seededReconcile = { seconds: (performance.now() - reconcileStarted) / 1000, status: rr.status };
        options.progress(`history: reconcile records rebuilt in ${seededReconcile.seconds.toFixed(1)} s (${rr.status})`);
      }
    } finally {
      await clickhouse.close();
    }
  }
  const pipelineStartMs = Date.now();
  const httpPort = await freePort();
  const child = spawn(process.execPath, ['bin/paysentinel.mjs', 'start'], {
    cwd: new URL('..', import.meta.url),
    env: {
      ...process.env,
      KAFKA_EVENTS_TOPIC: topics.events,
      KAFKA_DLQ_TOPIC: topics.dlq,
      KAFKA_CASES_TOPIC: topics.cases,
      KAFKA_GROUP_ID: `bench-${id}`,
      CLICKHOUSE_DATABASE: database,
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: `bench-${id}-cases-reader` });
  try {
    await ensureTopics(
      admin,
      Object.values(topics).map((topic) => ({ topic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication })),
    );
    await producer.connect();
    /** `rule|entity` -> when its triggering event was acknowledged. */
    const triggerAt = new Map<string, number>();
    /** `rule|entity` -> ms from its trigger's acknowledgement to its case on the topic. */
    const latencies = new Map<string, number>();
    await consumer.connect();
    await consumer.subscribe({ topics: [topics.cases], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const c = JSON.parse(message.value!.toString()) as { rule_id: string; entity_id: string; hit_count: number };
        const key = `${c.rule_id}|${c.entity_id}`;
        const t = triggerAt.get(key);
        if (c.hit_count === 1 && t !== undefined && !latencies.has(key)) latencies.set(key, performance.now() - t);
      },
    });
    // Traffic starts once the pipeline has its partitions (polled, not a fixed wait).
    await waitFor(
      'the pipeline to be ready (/healthz)',
      120_000,
      options.progress,
      child,
      async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`).catch(() => null))?.ok === true,
    );

    const traffic = buildTraffic(options.rate, options.durationMs, options.progress);
    const { startedAt: started, lateMs } = await traffic.start();
    options.progress(
      `traffic starts ${new Date(started).toISOString()}` +
        (historyEndMs === null ? '' : `, ${((started - historyEndMs) / 1000).toFixed(0)} s after the history's last event time`),
    );
    let background = 0;
    let attacksSent = 0;
    const attackEvery = options.durationMs / (options.attacks + 1);
    let nextProgress = started + 5_000;
    while (Date.now() - started < options.durationMs + lateMs) {
      const due = traffic.due(Date.now() - started);
      // Chunks stay well below the broker's 1 MB request limit.
      for (let i = 0; i < due.length; i += 500) {
        await producer.send({ topic: topics.events, acks: -1, messages: due.slice(i, i + 500) });
      }
      background += due.length;
      if (attacksSent < options.attacks && Date.now() - started >= attackEvery * (attacksSent + 1)) {
        attacksSent++;
        const ip = `198.18.${attacksSent}.${Math.floor(Math.random() * 250) + 1}`;
        const events = Array.from({ length: 15 }, (_, i) => ({
          event_id: `bench-${id}-${attacksSent}-${i}`,
          occurred_at: new Date().toISOString(),
          type: 'payment',
          status: 'failed',
          order_id: `bench-${id}-${attacksSent}-${i}`,
          attempt: 1,
          amount_minor: 100 + i * 7,
          currency: 'CNY',
          channel: 'card',
          merchant_id: 'm-bench',
          user_id: `u-${attacksSent}-${i}`,
          ip,
          failure_code: 'card_declined',
        }));
        const order = `bench-${id}-dup-${attacksSent}`;
        const charge = (attempt: number) => ({
          event_id: `${order}-${attempt}`,
          occurred_at: new Date().toISOString(),
          type: 'payment',
          status: 'succeeded',
          order_id: order,
          attempt,
          transaction_id: `${order}-tx${attempt}`,
          amount_minor: 4999,
          currency: 'CNY',
          channel: 'alipay',
          merchant_id: 'm-bench',
          user_id: `u-dup-${attacksSent}`,
          device_id: `d-dup-${attacksSent}`,
          ip: `198.19.${attacksSent}.1`,
        });
        const message = (e: { order_id: string }) => ({ key: e.order_id, value: JSON.stringify(e) });
        // The first 14 attempts and the first charge go out together; the 15th attempt and the
        // second charge are the triggers, timed from their acknowledgement.
        await producer.send({ topic: topics.events, acks: -1, messages: [...events.slice(0, 14), charge(1)].map(message) });
        await producer.send({ topic: topics.events, acks: -1, messages: [events[14]!, charge(2)].map(message) });
        const ackedAt = performance.now();
        triggerAt.set(`ip_amount_probing|${ip}`, ackedAt);
        triggerAt.set(`duplicate_charge|${order}`, ackedAt);
      }
      if (Date.now() >= nextProgress) {
        options.progress(`${background} background events, ${triggerAt.size} attacks, ${latencies.size} detected`);
        nextProgress += 5_000;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // How current the rates are as the traffic stops (the wait for the last cases below is not measured).
    const ratesBuckets = await readRatesFreshness(config, database, `http://127.0.0.1:${httpPort}/metrics`);
    const waitUntil = Date.now() + 15_000;
    while (latencies.size < triggerAt.size && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 200));
    const ofRule = (rule: string): RuleLatency => {
      const keys = [...triggerAt.keys()].filter((k) => k.startsWith(`${rule}|`));
      const values = keys.flatMap((k) => (latencies.has(k) ? [Math.round(latencies.get(k)!)] : []));
      return { attacks: keys.length, detected: values.length, latencyMs: summary(values), latenciesMs: values };
    };
    const jobRuns = await readJobRuns(config, database, pipelineStartMs, started);
    return {
      ...jobRuns,
      ratesBuckets,
      seededRates,
      seededReconcile,
      rate: options.rate,
      history: options.history ?? 0,
      backgroundEvents: background,
      attacks: triggerAt.size,
      detected: latencies.size,
      latencyMs: summary([...latencies.values()]),
      byRule: { ip_amount_probing: ofRule('ip_amount_probing'), duplicate_charge: ofRule('duplicate_charge') },
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await Promise.allSettled([consumer.disconnect(), producer.disconnect()]);
    const clickhouse = createClickHouse(config);
    await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
    await clickhouse.close();
    await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => {});
    await admin.disconnect();
  }
}

/**
 * Background traffic built before it is sent, above this many messages built while it is sent.
 * Building one costs 40-60 µs of CPU (simulator/generate.ts; `bench:detect` prints it), a
 * fifth of a core or more at 5,000 events/s that a deployment's gateways spend on their own machines; on
 * a 2-core machine it would be taken from the pipeline under test. 3 million (10 minutes at
 * 5,000/s) hold about 1.5 GB.
 */
const PREBUILT_LIMIT = 3_000_000;

/**
 * The simulator's background traffic for the run: built in advance (up to PREBUILT_LIMIT
 * messages), its event times starting when the traffic does; `start` waits for that moment.
 * The start is planned from the measured cost of building a sample, with room to spare (the
 * pipeline runs beside the build); if building still overruns, the first events are late by
 * that much, it is printed, and the run still lasts its full duration after them.
 */
function buildTraffic(rate: number, durationMs: number, progress: (line: string) => void) {
  const planned = Math.ceil((rate * durationMs) / 1000);
  const prebuilt = planned <= PREBUILT_LIMIT;
  let budgetMs = 0;
  if (prebuilt) {
    const sample = createTrafficGenerator({ seed: 9, rate, durationMs, startMs: Date.now() });
    const cpu = process.cpuUsage();
    let n = 0;
    for (let item = sample.next(); item && n < 20_000; item = sample.next()) n++;
    const used = process.cpuUsage(cpu);
    // The generator adds redeliveries and invalid messages to the planned ones (about 3 %).
    budgetMs = 2_000 + Math.ceil((planned * 1.1 * 1.5 * (used.user + used.system)) / Math.max(1, n) / 1000);
  }
  const startAt = Date.now() + budgetMs;
  const generator = createTrafficGenerator({ seed: 9, rate, durationMs, startMs: startAt });
  const sendAt: number[] = [];
  // A message is let go once handed to the producer.
  const messages: ({ key: string; value: Buffer } | undefined)[] = [];
  if (prebuilt) {
    const cpu = process.cpuUsage();
    for (let item = generator.next(); item; item = generator.next()) {
      sendAt.push(item.sendAtMs);
      messages.push({ key: item.key, value: item.value });
    }
    const used = process.cpuUsage(cpu);
    progress(
      `traffic: ${messages.length} messages built before sending (${((used.user + used.system) / Math.max(1, messages.length)).toFixed(1)} µs of CPU each)`,
    );
  } else {
    progress(`traffic: ${planned} messages is above ${PREBUILT_LIMIT}: built while sending, on this machine's CPU`);
  }
  let next = 0;
  return {
    /** Waits until the planned start (the first event time); returns it and how late the build made it. */
    async start(): Promise<{ startedAt: number; lateMs: number }> {
      const late = Date.now() - startAt;
      if (prebuilt && late > 0) progress(`traffic: building took ${late} ms longer than planned; the first events are that late`);
      else if (late < 0) await new Promise((r) => setTimeout(r, -late));
      return { startedAt: startAt, lateMs: Math.max(0, late) };
    },
    /** The messages due by `elapsedMs` after the start, not handed out before. */
    due(elapsedMs: number): { key: string; value: Buffer }[] {
      const due: { key: string; value: Buffer }[] = [];
      if (!prebuilt) {
        for (let at = generator.peekSendAtMs(); at !== null && at <= elapsedMs; at = generator.peekSendAtMs()) {
          const item = generator.next()!;
          due.push({ key: item.key, value: item.value });
        }
        return due;
      }
      while (next < messages.length && sendAt[next]! <= elapsedMs) {
        due.push(messages[next]!);
        messages[next++] = undefined;
      }
      return due;
    },
  };
}

/** Polls `ready` every 500 ms until it is true; fails after `timeoutMs`, or when the child exits. */
async function waitFor(what: string, timeoutMs: number, progress: (line: string) => void, child: ChildProcess, ready: () => Promise<boolean>): Promise<void> {
  const started = Date.now();
  let told = started;
  while (!(await ready())) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`paysentinel start exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}; its log is above`);
    if (Date.now() - started > timeoutMs) throw new Error(`gave up waiting ${Math.round(timeoutMs / 1000)} s for ${what}`);
    if (Date.now() - told >= 10_000) {
      progress(`waiting for ${what}: ${Math.round((Date.now() - started) / 1000)} s`);
      told = Date.now();
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A TCP port nothing listens on now, for the pipeline's /healthz. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export interface DetectThroughputResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  ticks: number;
  /** Entities that passed the SQL screen and were computed exactly. */
  evaluated: number;
  casesOpened: number;
}

/**
 * How fast detection alone works off stored events: writes a backlog of `events` payments (each
 * from a new IP, device, user and order, plus one card-testing burst) into a fresh database, then
 * runs the live detector (shipped rules, cases kept in memory) until it has taken every row.
 */
export async function runDetectThroughput(config: Config, options: { events: number; progress: (line: string) => void }): Promise<DetectThroughputResult> {
  const database = `paysentinel_bench_${randomUUID().slice(0, 8)}_backlog`;
  const clickhouse = createClickHouse(config, { requestTimeoutMs: 120_000 });
  const http = createClickHouseHttp(config, { timeoutMs: 120_000 });
  try {
    await migrate(clickhouse, database, silentLogger);
    options.progress(`writing a backlog of ${options.events} events`);
    const rows = await writeBacklog(http, database, { events: options.events, nowMs: Date.now(), attackIp: '198.19.0.1' });
    const book = createCaseBook();
    const detector = createDetector({
      clickhouse,
      http,
      database,
      ruleSet: await loadRuleSetOrThrow(),
      logger: silentLogger,
      isLeader: () => true,
      cases: book,
    });
    options.progress('detecting');
    const started = performance.now();
    do await detector.tick();
    while (detector.stats().behind);
    const seconds = (performance.now() - started) / 1000;
    const stats = detector.stats();
    if (stats.rows !== rows) throw new Error(`detection took ${stats.rows} of ${rows} rows`);
    return { events: rows, seconds, eventsPerSecond: rows / seconds, ticks: stats.ticks, evaluated: stats.evaluated, casesOpened: book.opened.length };
  } finally {
    await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
    await clickhouse.close();
  }
}
