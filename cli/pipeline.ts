import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { createKafkaPolicyPublisher, startAnalyticsSchedule, type RetryPolicyDeps } from '../analytics/index.ts';
import type { Config } from '../config/index.ts';
import { baselineFacts } from '../analytics/baselines.ts';
import { createCaseStore, createDetector, type Detector } from '../detection/index.ts';
import { startCaseWebhook } from '../detection/webhook.ts';
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
import { BACKGROUND_PRIORITY, createClickHouse, pingClickHouse, type ClickHouseClient } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';

export interface RunningPipeline {
  metrics: IngestMetrics;
  /** Whether this instance runs the scheduled jobs. */
  leadership: Leadership;
  detector: Detector;
  ingestor: Ingestor;
  clickhouse: ClickHouseClient;
  /** Resolves with the error when the pipeline stopped by itself. */
  failed: Promise<Error>;
  stop(): Promise<void>;
}

/**
 * Wires the pipeline from configuration: migrations, topics, ingest, lag poller and the HTTP
 * endpoint. Used by `paysentinel start`, the demo and the benchmark, so all run the same code.
 */
export async function startPipeline(config: Config, logger: Logger): Promise<RunningPipeline> {
  const clickhouse = createClickHouse(config);
  const jobsClickHouse = createClickHouse(config, { maxThreads: 1, priority: BACKGROUND_PRIORITY, requestTimeoutMs: 600_000 });
  const kafka = createKafka(config, logger);
  const metrics = createIngestMetrics();

  await migrate(clickhouse, config.clickhouseDatabase, logger);
  const admin = kafka.admin();
  await admin.connect();
  const created = await ensureTopics(admin, [
    ...ingestTopics(config),
    { topic: config.casesTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
  ]);
  if (created.length > 0) logger.info('created topics', { topics: created });

  const ingestor = createIngestor({ kafka, clickhouse, config, logger, metrics });
  await ingestor.start();
  const leadership = await startLeadership({ kafka, topic: config.leaderTopic, groupId: `${config.kafkaGroupId}-leader`, logger });
  // Scheduled runs of the retry-policy job publish to the compacted payments.retry-policy topic.
  const policyPublisher = createKafkaPolicyPublisher(kafka, { replicationFactor: config.topicReplication });
  const analyticsDeps: RetryPolicyDeps = {
    // The jobs are background work: one thread per query leaves the other core to ingest and
    // detection, their statements pause while one of ingest's or detection's runs (priority),
    // and they may take minutes when catching up.
    clickhouse: jobsClickHouse,
    database: config.clickhouseDatabase,
    logger: logger.child({ stage: 'analytics' }),
    publisher: policyPublisher,
    // Every run counted in paysentinel_job_runs_total{job,status} on /metrics.
    metrics: createJobMetrics(metrics.registry),
    reportsDir: config.reportsDir,
    statements: { dir: config.statementsDir, graceMs: config.statementGraceMs, maxBytes: config.statementMaxBytes },
  };
  const analytics = startAnalyticsSchedule(analyticsDeps, undefined, {
    shouldRun: leadership.isLeader,
  });
  const rulePaths = { rulesPath: config.rulesPath || defaultRulesPath, featuresPath: config.featuresPath || defaultFeaturesPath };
  const ruleSet = await loadRuleSetOrThrow(rulePaths);
  const casesProducer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await casesProducer.connect();
  const detector = createDetector({
    clickhouse,
    http: createClickHouseHttp(config),
    database: config.clickhouseDatabase,
    ruleSet,
    cases: createCaseStore({ clickhouse, database: config.clickhouseDatabase, producer: casesProducer, topic: config.casesTopic }),
    logger: logger.child({ stage: 'detection' }),
    isLeader: leadership.isLeader,
    tickMs: config.detectionTickMs,
    baselines: (nowMs) => baselineFacts(clickhouse, config.clickhouseDatabase, nowMs),
  });
  detector.start();
  // Delivery state is the webhook group's committed offsets on the cases topic, so it survives restarts.
  const webhook = config.caseWebhookUrl
    ? await startCaseWebhook({ kafka, topic: config.casesTopic, groupId: `${config.kafkaGroupId}-webhook`, url: config.caseWebhookUrl, secret: config.caseWebhookSecret, logger: logger.child({ stage: 'webhook' }), registry: metrics.registry })
    : undefined;
  const ruleWatcher = watchRules({ paths: rulePaths, logger: logger.child({ stage: 'rules' }), current: detector.ruleSet, onChange: detector.setRuleSet });
  const stopLag = startLagPoller({ admin, groupId: config.kafkaGroupId, topic: config.eventsTopic, gauge: metrics.lag, logger });
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
        const s = ingestor.status();
        const checks = { kafka: s.connected, clickhouse: clickhouseUp, assigned: s.assignedPartitions > 0 };
        return { ready: Object.values(checks).every(Boolean), checks: { ...checks, paused: s.paused, buffered: String(s.buffered) } };
      },
    });
    logger.info('serving /metrics and /healthz', { address: `http://${config.httpHost}:${config.httpPort}` });
  }

  return {
    metrics,
    leadership,
    detector,
    ingestor,
    clickhouse,
    failed: webhook ? Promise.race([ingestor.failed, webhook.failed]) : ingestor.failed,
    async stop() {
      ruleWatcher.stop();
      await detector.stop();
      await webhook?.stop();
      await casesProducer.disconnect();
      await analytics.stop();
      await policyPublisher.close();
      await leadership.stop();
      stopLag();
      clearInterval(pingTimer);
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await ingestor.stop();
      await recorder.stop();
      await admin.disconnect();
      await Promise.all([clickhouse.close(), jobsClickHouse.close()]);
    },
  };
}
