import { mkdir, writeFile } from 'node:fs/promises';
import { Partitioners } from 'kafkajs';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { measureLag } from '../ingest/index.ts';
import { createKafka } from '../kafka/index.ts';
import { createLogger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { runSimulation } from '../simulator/run.ts';
import { resolveScenarios } from '../simulator/scenarios.ts';
import { projectRoot } from '../stack/cli.ts';
import { createLocalStack } from '../stack/index.ts';
import { createCaseStore } from '../cases/index.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { ident, sql } from '../storage/sql.ts';
import { numberOption, parseCommandArgs, type Command } from './command.ts';
import { parseDuration } from '../rules/duration.ts';
import type { PaymentEvent } from '../contract/index.ts';
import type { Logger } from '../log/index.ts';
import type { TrafficGenerator } from '../simulator/generate.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import { importStatement } from '../statements/import.ts';
import { formatPeriod } from '../statements/period.ts';
import { breaksQuery } from '../statements/reconcile-queries.ts';
import { reconcilePeriod } from '../statements/reconcile.ts';
import { simulatedStatement } from '../statements/simulated.ts';
import { writeStatement } from '../statements/write.ts';
import { startPipeline } from './pipeline.ts';

const help = `Usage: paysentinel demo [--duration 60s] [--rate 300] [--seed N] [--json]

The guided tour. Starts Kafka and ClickHouse if they are not running, starts the pipeline,
streams realistic payment traffic through it (baseline plus the card-testing,
duplicate-charge, stuck-processing and charged-but-failed scenarios, with 1% malformed
messages), waits until everything is stored or dead-lettered, and prints a summary:
events produced, stored, dead-lettered and the per-status counts from ClickHouse. It then
writes the payment platform's statement of the run's alipay traffic with one break of each
kind injected (out/demo-statement-alipay.csv), imports and reconciles it, and shows which of
the injected breaks were found.

Exit code 0 only when the numbers add up: every distinct valid event stored exactly once and
every malformed message in the dead-letter topic.

Options:
  --duration D   How long to stream traffic (default 60s)
  --rate N       Messages per second (default 300)
  --seed N       Simulator seed (default 42) for a repeatable run
  --json         Print the summary as JSON
  -h, --help     Show this help

"npm run demo" installs what is missing first (npm packages, ClickHouse, Kafka jars).`;

export const demoCommand: Command = {
  name: 'demo',
  help,
  async run(argv) {
    const { values } = parseCommandArgs('demo', argv, {
      duration: { type: 'string' },
      rate: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    });
    const durationMs = values.duration === undefined ? 60_000 : parseDuration(values.duration);
    if (durationMs === null || durationMs <= 0) throw new PaysentinelError('USAGE', `--duration ${values.duration} is not a duration such as 60s or 2m`);
    const rate = numberOption('demo', 'rate', values.rate, 300, 1);
    const seed = numberOption('demo', 'seed', values.seed, 42, 0);
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel });
    const say = (line: string) => process.stderr.write(`demo: ${line}\n`);

    say('starting Kafka and ClickHouse (nothing is started if they already answer)');
    const stack = createLocalStack({ config, rootDir: projectRoot, logger });
    const stackStatus = await stack.up();
    if (!stackStatus.ok) throw new PaysentinelError('STACK_FAILED', 'Kafka or ClickHouse did not come up; see "paysentinel stack status".');

    say('starting the pipeline');
    const pipeline = await startPipeline(config, logger);
    const kafka = createKafka(config, logger, '-demo');
    const admin = kafka.admin();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await Promise.all([admin.connect(), producer.connect()]);
    const events = ident(config.clickhouseDatabase, 'payment_events');
    try {
      // Whatever was already waiting in the topic is consumed first, so this run's numbers stand alone.
      const drain = Date.now();
      while ([...(await measureLag(admin, config.kafkaGroupId, config.eventsTopic)).values()].some((v) => v > 0)) {
        if (Date.now() - drain > 120_000)
          throw new PaysentinelError('STACK_FAILED', 'the pipeline did not catch up with events already in the topic within 2 minutes');
        await new Promise((r) => setTimeout(r, 250));
      }
      const deadBefore = await deadLettered();
      const runStartedAt = Date.now();

      const scenarios = resolveScenarios(['card-testing', 'duplicate-charge', 'stuck-processing', 'charged-but-failed']);
      const generator = createTrafficGenerator({ seed, rate, durationMs, startMs: Date.now(), scenarios, invalidShare: 0.01 });
      // This run's event ids: the summary counts exactly these, even if others produce to the topic meanwhile.
      const runIds = new Set<string>();
      const next = generator.next.bind(generator);
      generator.next = () => {
        const item = next();
        if (item?.event) runIds.add(item.event.event_id);
        return item;
      };
      const storedBase = await pipeline.metrics.stored.get();
      say(`streaming ${rate} messages/s for ${durationMs / 1000}s (seed ${seed}; scenarios: ${scenarios.join(', ')})`);
      const stats = await runSimulation({
        producer,
        topic: config.eventsTopic,
        generator,
        logger,
        onProgress: (p) =>
          void pipeline.metrics.stored
            .get()
            .then((stored) => say(`produced ${p.produced}/${p.planned} (${Math.round(p.fraction * 100)}%), stored so far ${stored - storedBase}`)),
      });
      await mkdir(`${projectRoot}/out`, { recursive: true });
      const labelsFile = `${projectRoot}/out/demo-labels.json`;
      await writeFile(labelsFile, JSON.stringify(generator.labels(), null, 2) + '\n');

      say('waiting until every message is stored or dead-lettered');
      const waitStarted = Date.now();
      const ids = [...runIds];
      const ofRun = async <T>(select: (chunk: string[]) => string): Promise<T[]> => {
        const out: T[] = [];
        for (let i = 0; i < ids.length; i += 5000) out.push(...(await queryRows<T>(pipeline.clickhouse, select(ids.slice(i, i + 5000)))));
        return out;
      };
      const storedOfRun = async () =>
        (await ofRun<{ n: string }>((chunk) => sql`SELECT count() AS n FROM ${events} WHERE event_id IN ${chunk}`)).reduce((a, r) => a + Number(r.n), 0);
      let stored = await storedOfRun();
      let dead = (await deadLettered()) - deadBefore;
      while (stored < stats.distinctEvents || dead < stats.invalid) {
        if (Date.now() - waitStarted > 120_000) break;
        await new Promise((r) => setTimeout(r, 500));
        [stored, dead] = [await storedOfRun(), (await deadLettered()) - deadBefore];
      }
      const statusRows = await ofRun<{ type: string; status: string; n: string }>(
        (chunk) => sql`SELECT type, status, count() AS n FROM ${events} WHERE event_id IN ${chunk} GROUP BY type, status`,
      );
      const byStatusMap = new Map<string, { type: string; status: string; n: number }>();
      for (const r of statusRows) {
        const key = `${r.type}/${r.status}`;
        const cur = byStatusMap.get(key) ?? { type: r.type, status: r.status, n: 0 };
        cur.n += Number(r.n);
        byStatusMap.set(key, cur);
      }
      const byStatus = [...byStatusMap.values()].sort((a, b) => `${a.type}/${a.status}`.localeCompare(`${b.type}/${b.status}`));
      const duplicates = (
        await ofRun<{ n: string }>(
          (chunk) => sql`SELECT count() AS n FROM (SELECT event_id FROM ${events} WHERE event_id IN ${chunk} GROUP BY event_id HAVING count() > 1)`,
        )
      ).reduce((a, r) => a + Number(r.n), 0);
      const ok = stored === stats.distinctEvents && dead === stats.invalid && duplicates === 0;
      // Detection runs on the leader; give it a few ticks after the last event to open the cases.
      const store = createCaseStore({ clickhouse: pipeline.clickhouse, database: config.clickhouseDatabase, producer, topic: config.casesTopic });
      const labels = generator.labels().scenarios;
      const caseFor = async () => {
        // Cases opened or updated during this run: with the same seed an IP or order may already
        // have an open case from an earlier demo, which this run's hits update instead of duplicating.
        const recent = await store.list({ sinceMs: runStartedAt - 1_000, limit: 10_000 });
        return new Map(recent.map((c) => [`${c.rule_id} ${c.entity_type} ${c.entity_id}`, c]));
      };
      let found = await caseFor();
      const detectWait = Date.now();
      while (labels.some((l) => !found.has(`${l.rule_id} ${l.entity_type} ${l.entity_id}`)) && Date.now() - detectWait < 20_000) {
        await new Promise((r) => setTimeout(r, 500));
        found = await caseFor();
      }
      const statement = await reconcileDemoStatement(generator, stats.produced, pipeline.clickhouse, config.clickhouseDatabase, logger);
      const summary = {
        ok,
        produced: stats.produced,
        events: stats.events,
        redeliveries: stats.redeliveries,
        distinct_events: stats.distinctEvents,
        malformed: stats.invalid,
        stored,
        dead_lettered: dead,
        duplicates_stored: duplicates,
        duplicates_skipped: await pipeline.metrics.duplicates.get(),
        by_status: byStatus.map((r) => ({ type: r.type, status: r.status, count: r.n })),
        scenarios: labels.map((l) => ({
          scenario: l.scenario,
          rule: l.rule_id,
          entity: `${l.entity_type} ${l.entity_id}`,
          case_id: found.get(`${l.rule_id} ${l.entity_type} ${l.entity_id}`)?.case_id ?? null,
        })),
        cases_opened_this_run: [...found.values()].filter((c) => Date.parse(c.opened_at.replace(' ', 'T') + 'Z') >= runStartedAt - 1_000).length,
        labels_file: labelsFile,
        statement,
      };
      if (values.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else process.stdout.write(render(summary, config));
      return ok ? 0 : 1;
    } finally {
      await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
      await pipeline.stop();
    }

    async function deadLettered(): Promise<number> {
      return (await admin.fetchTopicOffsets(config.dlqTopic)).reduce((sum, p) => sum + Number(p.high), 0);
    }
  },
};

type Summary = {
  ok: boolean;
  produced: number;
  events: number;
  redeliveries: number;
  distinct_events: number;
  malformed: number;
  stored: number;
  dead_lettered: number;
  duplicates_stored: number;
  duplicates_skipped: number;
  by_status: { type: string; status: string; count: number }[];
  scenarios: { scenario: string; rule: string; entity: string; case_id: string | null }[];
  cases_opened_this_run: number;
  labels_file: string;
  statement: DemoStatement;
};

interface DemoStatement {
  file: string;
  channel: string;
  period: string;
  lines: number;
  matched: number;
  injected: { kind: string; order_id: string; found: boolean }[];
  not_injected: { kind: string; reason: string }[];
  other_breaks: number;
}

/**
 * The platform's statement of this run's alipay traffic, with one break of each kind injected,
 * imported and reconciled at once. Its period is the run itself (first to last event), already
 * over and every event of it stored, so no grace is waited for. Breaks beyond the injected ones
 * come from other traffic in the same channel and minutes of this database.
 */
async function reconcileDemoStatement(
  generator: TrafficGenerator,
  produced: number,
  clickhouse: ClickHouseClient,
  database: string,
  logger: Logger,
): Promise<DemoStatement> {
  const replay = createTrafficGenerator(generator.options);
  const sent: PaymentEvent[] = [];
  for (let i = 0; i < produced; i++) {
    const item = replay.next();
    if (item?.event) sent.push(item.event);
  }
  let first = Infinity;
  let last = -Infinity;
  for (const e of sent) {
    const t = Date.parse(e.occurred_at);
    if (t < first) first = t;
    if (t > last) last = t;
  }
  const period = { fromMs: Math.floor(first / 1000) * 1000, toMs: Math.floor(last / 1000) * 1000 + 1000 };
  const channel = 'alipay';
  const built = simulatedStatement(sent, channel, period, { currencies: true, inject: true });
  const file = `${projectRoot}/out/demo-statement-${channel}.csv`;
  await writeFile(file, writeStatement('generic', built.lines, period));
  const deps = { clickhouse, database, logger };
  const imported = await importStatement(deps, { path: file, format: 'generic', channel, period, maxBytes: 1024 ** 3 });
  if (imported.status === 'refused') throw new PaysentinelError('STATEMENT_REFUSED', `the demo statement was refused: ${imported.reason}`);
  const outcome = await reconcilePeriod(deps, { channel, period }, { graceMs: 0, now: new Date(Math.max(Date.now(), period.toMs)) });
  if (outcome.status !== 'reconciled') throw new PaysentinelError('STATEMENT_REFUSED', 'the demo statement period did not close');
  const found = await queryRows<{ kind: string; order_id: string }>(
    clickhouse,
    breaksQuery(database, { fromMs: period.fromMs, toMs: period.fromMs + 1000, channel, limit: 100_000 }),
  );
  const key = (b: { kind: string; order_id: string }) => `${b.kind} ${b.order_id}`;
  const injected = new Set(built.injected.map(key));
  return {
    file,
    channel,
    period: formatPeriod(period),
    lines: outcome.run.lines,
    matched: outcome.run.matched,
    injected: built.injected.map((b) => ({ kind: b.kind, order_id: b.order_id, found: found.some((f) => key(f) === key(b)) })),
    not_injected: built.notInjected,
    other_breaks: found.filter((f) => !injected.has(key(f))).length,
  };
}

function render(s: Summary, config: ReturnType<typeof loadConfig>): string {
  const check = (good: boolean) => (good ? 'ok' : 'MISMATCH');
  const lines = [
    '',
    'paysentinel demo summary',
    '========================',
    `messages produced      ${s.produced}  (${s.events} events, ${s.redeliveries} exact redeliveries, ${s.malformed} malformed)`,
    `distinct valid events  ${s.distinct_events}`,
    `stored in ClickHouse   ${s.stored}  ${check(s.stored === s.distinct_events)}  (redeliveries skipped: ${s.duplicates_skipped}, stored twice: ` +
      `${s.duplicates_stored})`,
    `dead-lettered          ${s.dead_lettered}  ${check(s.dead_lettered === s.malformed)}`,
    '',
    'stored events by type and status:',
    ...s.by_status.map((r) => `  ${r.type.padEnd(8)} ${r.status.padEnd(11)} ${r.count}`),
    '',
    `injected scenarios and their cases (${s.cases_opened_this_run} case(s) opened during this run; a case already open for the`,
    '  same entity from an earlier run is updated instead; cases beyond the scenarios concern earlier traffic in this database):',
    ...s.scenarios.map((x) => `  ${x.scenario.padEnd(20)} -> ${x.rule} on ${x.entity}: ${x.case_id ? `case ${x.case_id}` : 'NOT DETECTED'}`),
    '',
    `statement of this run's ${s.statement.channel} traffic (${s.statement.file}, period ${s.statement.period}):`,
    `  ${s.statement.lines} lines, ${s.statement.matched} matched; injected breaks:`,
    ...s.statement.injected.map((b) => `  ${b.kind.padEnd(22)} order ${b.order_id}: ${b.found ? 'found' : 'NOT FOUND'}`),
    ...s.statement.not_injected.map((n) => `  ${n.kind.padEnd(22)} not injected: ${n.reason}`),
    ...(s.statement.other_breaks > 0
      ? [`  ${s.statement.other_breaks} other break(s): other traffic of this channel in the same minutes of this database`]
      : []),
    `  paysentinel statements breaks --from ${s.statement.period.split('..')[0]} --channel ${s.statement.channel}`,
    '',
    s.ok ? 'RESULT: the numbers add up.' : 'RESULT: the numbers do NOT add up (see MISMATCH above).',
    '',
    'Where to look next:',
    `  clickhouse-client --query "SELECT status, count() FROM ${config.clickhouseDatabase}.payment_events GROUP BY status"`,
    `  paysentinel start          # run the pipeline; metrics on http://${config.httpHost}:${config.httpPort}/metrics`,
    `  paysentinel cases list --status open     # what support sees; "cases show ID" for evidence`,
    `  paysentinel simulate --scenario all --labels out/labels.json`,
    `  labels of this run: ${s.labels_file}`,
    '  paysentinel stack status | paysentinel stack down',
    '',
  ];
  return lines.join('\n');
}
