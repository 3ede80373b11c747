import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { Partitioners } from 'kafkajs';
import { quantile } from 'simple-statistics';
import type { Config } from '../config/index.ts';
import { createKafka, ensureTopics } from '../kafka/index.ts';
import type { Logger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { command, createClickHouse } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { createCaseBook } from '../detection/cases.ts';
import { createDetector } from '../detection/detector.ts';
import { silentLogger } from '../log/index.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { writeBacklog, writeSimulatedHistory } from './backlog.ts';
import { ident } from '../storage/sql.ts';

export interface DetectBenchOptions {
  rate: number;
  durationMs: number;
  attacks: number;
  /**
   * Stored events written before the run, spread over the 15 minutes before it (the
   * channel context's window): the state after a quarter of an hour of sustained traffic. 0: none.
   */
  history?: number;
  progress: (line: string) => void;
}

export interface DetectBenchResult {
  rate: number;
  /** Stored events written before the run (--history). */
  history: number;
  backgroundEvents: number;
  attacks: number;
  detected: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number } | null;
  /** Every attack's latency (ms), in the order the attacks were sent. */
  latenciesMs: number[];
}

/**
 * Detection latency under load: background simulator traffic at `rate` events/s, plus card-testing
 * bursts from fresh IPs. Each burst's 15th attempt is the one that makes ip_amount_probing's
 * conditions true (15 attempts, 15 amounts, all declined), so latency = from Kafka acknowledging
 * that event to the case arriving on the cases topic.
 */
export async function runDetectBench(config: Config, logger: Logger, options: DetectBenchOptions): Promise<DetectBenchResult> {
  const id = randomUUID().slice(0, 8);
  const topics = { events: `bench-${id}.payments.events`, dlq: `bench-${id}.payments.events.dlq`, cases: `bench-${id}.payments.cases` };
  const database = `paysentinel_bench_${id}`;
  const kafka = createKafka(config, logger, '-bench');
  const admin = kafka.admin();
  await admin.connect();
  if (options.history) {
    const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
    try {
      await migrate(clickhouse, database, silentLogger);
      const nowMs = Date.now();
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
    } finally {
      await clickhouse.close();
    }
  }
  const child = spawn(process.execPath, ['bin/paysentinel.mjs', 'start'], {
    cwd: new URL('..', import.meta.url),
    env: {
      ...process.env,
      KAFKA_EVENTS_TOPIC: topics.events,
      KAFKA_DLQ_TOPIC: topics.dlq,
      KAFKA_CASES_TOPIC: topics.cases,
      KAFKA_GROUP_ID: `bench-${id}`,
      CLICKHOUSE_DATABASE: database,
      HTTP_PORT: '0',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: `bench-${id}-cases-reader` });
  try {
    await ensureTopics(admin, Object.values(topics).map((topic) => ({ topic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication })));
    await producer.connect();
    const triggerAt = new Map<string, number>();
    /** Attack IP -> ms from its trigger's acknowledgement to its case on the topic. */
    const latencies = new Map<string, number>();
    await consumer.connect();
    await consumer.subscribe({ topics: [topics.cases], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const c = JSON.parse(message.value!.toString()) as { rule_id: string; entity_id: string; hit_count: number };
        const t = triggerAt.get(c.entity_id);
        if (c.rule_id === 'ip_amount_probing' && c.hit_count === 1 && t !== undefined) latencies.set(c.entity_id, performance.now() - t);
      },
    });
    // Let the pipeline start and take the lead before measuring.
    await new Promise((r) => setTimeout(r, 8_000));

    const generator = createTrafficGenerator({ seed: 9, rate: options.rate, durationMs: options.durationMs, startMs: Date.now() });
    const started = Date.now();
    let background = 0;
    let attacksSent = 0;
    const attackEvery = options.durationMs / (options.attacks + 1);
    let nextProgress = started + 5_000;
    while (Date.now() - started < options.durationMs) {
      const due: { key: string; value: Buffer }[] = [];
      for (let at = generator.peekSendAtMs(); at !== null && at <= Date.now() - started; at = generator.peekSendAtMs()) {
        const item = generator.next()!;
        due.push({ key: item.key, value: item.value });
      }
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
        // The first 14 go out together; the 15th is the trigger, timed from its acknowledgement.
        await producer.send({ topic: topics.events, acks: -1, messages: events.slice(0, 14).map((e) => ({ key: e.order_id, value: JSON.stringify(e) })) });
        await producer.send({ topic: topics.events, acks: -1, messages: [{ key: events[14]!.order_id, value: JSON.stringify(events[14]) }] });
        triggerAt.set(ip, performance.now());
      }
      if (Date.now() >= nextProgress) {
        options.progress(`${background} background events, ${attacksSent} attacks, ${latencies.size} detected`);
        nextProgress += 5_000;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const waitUntil = Date.now() + 15_000;
    while (latencies.size < attacksSent && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 200));
    const sorted = [...latencies.values()].sort((a, b) => a - b);
    return {
      rate: options.rate,
      history: options.history ?? 0,
      backgroundEvents: background,
      attacks: attacksSent,
      detected: latencies.size,
      latencyMs: sorted.length
        ? { p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1]! }
        : null,
      latenciesMs: [...triggerAt.keys()].flatMap((ip) => (latencies.has(ip) ? [Math.round(latencies.get(ip)!)] : [])),
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
