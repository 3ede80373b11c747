import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { createKafkaPolicyPublisher, startAnalyticsSchedule, type JobDeps } from '../analytics/index.ts';
import type { Config } from '../config/index.ts';
import { baselineFacts } from '../analytics/baselines.ts';
import { createAutomation, startAutomationLoop, startCommandResults, type Automation, type AutomationStatus } from '../automation/index.ts';
import { createCaseStore, startCaseWebhook } from '../cases/index.ts';
import { startBreakCases } from '../statements/cases.ts';
import { createDetector, type Detector } from '../detection/index.ts';
import { defaultFeaturesPath, defaultRulesPath, loadRuleSetOrThrow } from '../rules/index.ts';
import { watchRules } from '../detection/reload.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { Partitioners } from 'kafkajs';
import { createIngestor, startLagPoller, type Ingestor } from '../ingest/index.ts';
import { createKafka, ensureTopics, ingestTopics } from '../kafka/index.ts';
import { startLeadership, type Leadership } from '../kafka/leadership.ts';
import type { Logger } from '../log/index.ts';
import { startHttpServer } from '../metrics/http.ts';
import { startMetricsRecorder } from '../metrics/recorder.ts';
import { createIngestMetrics, createJobMetrics, type IngestMetrics } from '../metrics/registry.ts';
import { createClickHouse, createJobsClickHouse, JOB_STATEMENT_TIMEOUT_MS, pingClickHouse, type ClickHouseClient } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { PaysentinelError } from '../errors/index.ts';

/** How often the detection leader's automation pass runs (takes new cases, settles outcomes). */
const AUTOMATION_PASS_MS = 2_000;

/** What one `paysentinel start` runs; several instances with different roles share the work. */
export const ROLES = ['ingest', 'detect', 'jobs'] as const;
export type Role = (typeof ROLES)[number];

/** Parses `--roles ingest,detect` (any order, no repeats); undefined means all roles. */
export function parseRoles(raw: string | undefined): ReadonlySet<Role> {
  if (raw === undefined) return new Set(ROLES);
  const names = raw.split(',').map((r) => r.trim());
  const unknown = names.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (raw.trim() === '' || unknown.length > 0) {
    throw new PaysentinelError(
      'USAGE',
      `--roles ${JSON.stringify(raw)}: expected a comma-separated list of ${ROLES.join(', ')} (unknown: ${unknown.join(', ') || 'none given'}).\nRun ` +
        `"paysentinel start --help" for usage.`,
    );
  }
  return new Set(names as Role[]);
}

export interface RunningPipeline {
  roles: ReadonlySet<Role>;
  metrics: IngestMetrics;
  clickhouse: ClickHouseClient;
  /** With the ingest role. */
  ingestor?: Ingestor;
  /** With the detect role: the detector, which works only while this instance leads detection. */
  detection?: { detector: Detector; leadership: Leadership; automation: Automation; automationStatus: () => AutomationStatus };
  /** With the jobs role: the scheduled jobs run only while this instance leads them. */
  jobs?: { leadership: Leadership };
  /** Resolves with the error when the pipeline stopped by itself. */
  failed: Promise<Error>;
  stop(): Promise<void>;
}

/**
 * Wires the pipeline from configuration: migrations and topics, then each role asked for:
 * `ingest` (the consumer and its lag poller), `detect` (live detection on the elected detection
 * leader, the case webhook when configured, rule hot reload), `jobs` (the scheduled analytics
 * on the elected jobs leader); and always the metrics recorder and the HTTP endpoint. Detection
 * and the jobs each elect their own leader, so instances that run only one of them share the
 * work as well as instances that run all. Used by `paysentinel start`, the demo and the
 * benchmarks, so all run the same code.
 */
export async function startPipeline(config: Config, logger: Logger, roles: ReadonlySet<Role> = new Set(ROLES)): Promise<RunningPipeline> {
  const clickhouse = createClickHouse(config);
  const kafka = createKafka(config, logger);
  const metrics = createIngestMetrics();
  // CPU, resident memory, heap, GC and event-loop lag of this process beside the pipeline's own series.
  metrics.registry.collectProcessMetrics();
  /** What each started part needs done at stop, in reverse order of starting. */
  const stops: (() => Promise<void> | void)[] = [];

  await migrateDatabase(config, logger);
  const admin = kafka.admin();
  await admin.connect();
  stops.push(() => admin.disconnect());
  const created = await ensureTopics(admin, [
    ...ingestTopics(config),
    { topic: config.casesTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
    { topic: config.commandsTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
    { topic: config.commandResultsTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
  ]);
  if (created.length > 0) logger.info('created topics', { topics: created });
  const elect = async (role: 'detect' | 'jobs') => {
    const leadership = await startLeadership({
      kafka,
      topic: config.leaderTopic,
      groupId: `${config.kafkaGroupId}-leader-${role}`,
      logger: logger.child({ role }),
      replicationFactor: config.topicReplication,
    });
    stops.push(() => leadership.stop());
    return leadership;
  };

  let ingestor: Ingestor | undefined;
  if (roles.has('ingest')) {
    ingestor = createIngestor({ kafka, clickhouse, config, logger, metrics });
    await ingestor.start();
    stops.push(() => ingestor!.stop());
    const stopLag = startLagPoller({ admin, groupId: config.kafkaGroupId, topic: config.eventsTopic, gauge: metrics.lag, logger });
    stops.push(stopLag);
  }

  let jobs: RunningPipeline['jobs'];
  if (roles.has('jobs')) {
    const leadership = await elect('jobs');
    // The jobs' clients: one thread each; the rates job at RATES_PRIORITY (ScheduledJob.bounded).
    const jobsClickHouse = await createJobsClickHouse(config, { requestTimeoutMs: JOB_STATEMENT_TIMEOUT_MS });
    const spill = jobsClickHouse.spillBytes;
    logger.info(
      spill === null
        ? "jobs: JOBS_SPILL_BYTES=auto found no per-query memory limit; the server's own spilling settings apply"
        : spill === 0
          ? 'jobs: groupings do not spill to disk (JOBS_SPILL_BYTES=0)'
          : 'jobs: groupings continue on disk past JOBS_SPILL_BYTES',
      { setting: config.jobsSpillBytes, bytes: spill },
    );
    stops.push(() => jobsClickHouse.close());
    // Scheduled runs of the retry-policy job publish to the compacted payments.retry-policy topic.
    const policyPublisher = createKafkaPolicyPublisher(kafka, { replicationFactor: config.topicReplication });
    stops.push(() => policyPublisher.close());
    // The requery job publishes its status queries to the commands topic.
    const commandsProducer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await commandsProducer.connect();
    stops.push(() => commandsProducer.disconnect());
    const analyticsDeps: JobDeps = {
      // The jobs are background work: one thread per query leaves the other core to ingest and
      // detection, their statements pause while one of ingest's or detection's runs (priority),
      // and they may take minutes when catching up.
      clickhouse: jobsClickHouse.jobs,
      boundedClickhouse: jobsClickHouse.rates,
      database: config.clickhouseDatabase,
      logger: logger.child({ stage: 'analytics' }),
      publisher: policyPublisher,
      // Every run counted in paysentinel_job_runs_total{job,status} on /metrics.
      metrics: createJobMetrics(metrics.registry),
      reportsDir: config.reportsDir,
      statements: { dir: config.statementsDir, graceMs: config.statementGraceMs, maxBytes: config.statementMaxBytes },
      commands: { producer: commandsProducer, config },
    };
    const analytics = startAnalyticsSchedule(analyticsDeps, undefined, { shouldRun: leadership.isLeader });
    stops.push(() => analytics.stop());
    jobs = { leadership };
  }

  let detection: RunningPipeline['detection'];
  let webhookFailed: Promise<Error> | undefined;
  if (roles.has('detect')) {
    const leadership = await elect('detect');
    const rulePaths = { rulesPath: config.rulesPath || defaultRulesPath, featuresPath: config.featuresPath || defaultFeaturesPath };
    const ruleSet = await loadRuleSetOrThrow(rulePaths);
    const casesProducer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await casesProducer.connect();
    stops.push(() => casesProducer.disconnect());
    const cases = createCaseStore({
      clickhouse,
      database: config.clickhouseDatabase,
      producer: casesProducer,
      topic: config.casesTopic,
      updateIntervalMs: config.caseUpdateIntervalMs,
    });
    const detector = createDetector({
      clickhouse,
      http: createClickHouseHttp(config),
      database: config.clickhouseDatabase,
      ruleSet,
      cases,
      logger: logger.child({ stage: 'detection' }),
      isLeader: leadership.isLeader,
      tickMs: config.detectionTickMs,
      baselines: (nowMs) => baselineFacts(clickhouse, config.clickhouseDatabase, nowMs),
    });
    metrics.registry.gauge(
      'paysentinel_detection_failed_ticks_in_a_row',
      'Detection ticks failed since the last completed one (0 when healthy); each is repeated, /healthz says why.',
      [],
      () => detector.status().failedInARow,
    );
    // Which instance acts for detection and automation now: tests and ops find the leader here.
    metrics.registry.gauge('paysentinel_detection_leader', '1 while this instance leads detection and automation, else 0.', [], () =>
      leadership.isLeader() ? 1 : 0,
    );
    detector.start();
    // Delivery state is the webhook group's committed offsets on the cases topic, so it survives restarts.
    if (config.caseWebhookUrl) {
      const webhook = await startCaseWebhook({
        kafka,
        topic: config.casesTopic,
        groupId: `${config.kafkaGroupId}-webhook`,
        url: config.caseWebhookUrl,
        secret: config.caseWebhookSecret,
        logger: logger.child({ stage: 'webhook' }),
        registry: metrics.registry,
      });
      webhookFailed = webhook.failed;
      stops.push(() => webhook.stop());
    }
    // Stops run in reverse: the detector stops first, then its held case updates are published
    // while the webhook and the producer still run, so none is lost at shutdown.
    stops.push(() => cases.flush());
    stops.push(() => detector.stop());
    // Statement breaks become cases under the same leadership, rules and case store as detection.
    const breakCases = startBreakCases({
      clickhouse,
      database: config.clickhouseDatabase,
      cases,
      logger: logger.child({ stage: 'statements' }),
      ruleSet: detector.ruleSet,
      isLeader: leadership.isLeader,
    });
    stops.push(() => breakCases.stop());
    // Automation acts for the detection leader: the cases it handles are the ones detection opened.
    const automation = createAutomation({
      clickhouse,
      database: config.clickhouseDatabase,
      producer: casesProducer,
      config,
      cases,
      ruleSet: detector.ruleSet,
      logger: logger.child({ stage: 'automation' }),
    });
    const automationLoop = startAutomationLoop({
      automation,
      isLeader: leadership.isLeader,
      everyMs: AUTOMATION_PASS_MS,
      logger: logger.child({ stage: 'automation' }),
      mode: config.automation,
    });
    stops.push(() => automationLoop.stop());
    if (config.automation !== 'off') {
      const results = await startCommandResults({
        kafka,
        producer: casesProducer,
        clickhouse,
        database: config.clickhouseDatabase,
        topic: config.commandResultsTopic,
        groupId: `${config.kafkaGroupId}-command-results`,
        dlqTopic: config.dlqTopic,
        logger: logger.child({ stage: 'command-results' }),
      });
      stops.push(() => results.stop());
    }
    const ruleWatcher = watchRules({ paths: rulePaths, logger: logger.child({ stage: 'rules' }), current: detector.ruleSet, onChange: detector.setRuleSet });
    stops.push(() => ruleWatcher.stop());
    detection = { detector, leadership, automation, automationStatus: automationLoop.status };
  }

  // Snapshots of the counters into ClickHouse feed the Pipeline health dashboard.
  const recorder = startMetricsRecorder({ clickhouse, database: config.clickhouseDatabase, metrics, logger, instance: `${hostname()}-${process.pid}` });

  let clickhouseUp = true;
  const pingTimer = setInterval(() => {
    void pingClickHouse(clickhouse).then((ok) => (clickhouseUp = ok));
  }, 5_000);
  let server: Server | undefined;
  if (config.httpPort !== 0) {
    server = await startHttpServer({
      host: config.httpHost,
      port: config.httpPort,
      registry: metrics.registry,
      health: () => {
        const checks: Record<string, boolean> = { clickhouse: clickhouseUp };
        const extra: Record<string, boolean | string> = { roles: [...roles].join(',') };
        const degraded: Record<string, unknown> = {};
        if (ingestor) {
          const s = ingestor.status();
          Object.assign(checks, { kafka: s.connected, assigned: s.assignedPartitions > 0 });
          Object.assign(extra, { paused: s.paused, buffered: String(s.buffered) });
          if (s.trouble) degraded.ingest = s.trouble;
        }
        if (detection) {
          const a = detection.automationStatus();
          extra.automation = a.paused ? 'paused' : a.mode;
          if (a.failedInARow > 0 && a.lastFailure) degraded.automation = { reason: a.lastFailure.slice(0, 500), failedPasses: a.failedInARow };
        }
        const d = detection?.detector.status();
        if (d && d.failedInARow > 0 && d.lastFailure)
          degraded.detection = { reason: d.lastFailure.reason.slice(0, 500), failedTicks: d.failedInARow, lastAt: new Date(d.lastFailure.atMs).toISOString() };
        return { ready: Object.values(checks).every(Boolean), checks: { ...checks, ...extra }, degraded };
      },
    });
    logger.info('serving /metrics and /healthz', { address: `http://${config.httpHost}:${config.httpPort}` });
  }

  const never = new Promise<Error>(() => {});
  return {
    roles,
    metrics,
    clickhouse,
    ingestor,
    detection,
    jobs,
    failed: Promise.race([ingestor?.failed ?? never, webhookFailed ?? never]),
    async stop() {
      clearInterval(pingTimer);
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      // Detection and the jobs first, ingest's last batch after them, the recorder's last snapshot at the end.
      for (const stop of stops.reverse()) await stop();
      await recorder.stop();
      await clickhouse.close();
    },
  };
}
