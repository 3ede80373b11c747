import { randomInt } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Partitioners } from 'kafkajs';
import type { Command } from '../cli/command.ts';
import { numberOption, parseCommandArgs } from '../cli/command.ts';
import { parseDuration } from '../rules/duration.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createKafka, ensureTopics, ingestTopics } from '../kafka/index.ts';
import { createLogger } from '../log/index.ts';
import { createTrafficGenerator, type TrafficGenerator } from './generate.ts';
import { runSimulation, type SimulationStats } from './run.ts';
import { resolveScenarios, scenarios } from './scenarios.ts';
import type { PaymentEvent } from '../contract/index.ts';
import { simulatedStatement, type InjectedBreak } from '../statements/simulated.ts';
import { formats, type StatementFormat } from '../statements/types.ts';
import { writeStatement } from '../statements/write.ts';

const help = `Usage: paysentinel simulate [options]

Produces realistic payment traffic to the events topic: alipay, wechat_pay, card and bank
transfer payments from thousands of users, processing -> callbacks (some late), retries,
refunds and redeliveries. Scenarios inject one anomaly each, spread across the run.

Options:
  --rate N             Messages per second (default 200)
  --duration D         How long to run: 90s, 5m, 1h, 1500ms (default 60s)
  --seed S             Integer seed; the same seed gives the same traffic (default random, printed)
  --scenario NAME      Inject a scenario; repeat or comma-separate; "all" for every one
  --labels FILE        Write the injected scenarios (rule, entity, event ids) as JSON
  --invalid-share F    Fraction 0..1 of malformed messages (default 0)
  --statement FILE     Also write the payment platform's statement of the traffic sent, for one
                       channel, with one break of every kind injected (recorded under
                       "statement" in the --labels file); import it with "paysentinel
                       statements import". The period is the run's start day: the Beijing day
                       (wechat, alipay) or the UTC day (generic, stripe).
  --statement-format F generic, wechat (channel wechat_pay), alipay (alipay; no currency column,
                       so no currency_mismatch), stripe (card). Default: generic
  --statement-channel C  The channel of a generic statement (default alipay)
  --json               Print the final statistics as JSON on stdout
  --list-scenarios     List the scenarios and the rule each should trigger, then exit

Examples:
  paysentinel simulate --rate 500 --duration 10s --seed 7 --scenario all --labels out/labels.json
  paysentinel simulate --duration 5m --scenario card-testing,retry-storm --invalid-share 0.01
  paysentinel simulate --duration 2m --statement out/wechat.csv --statement-format wechat --labels out/labels.json`;

function listScenarios(json: boolean): string {
  if (json) {
    return JSON.stringify(
      scenarios.map((s) => ({ scenario: s.name, rule_id: s.ruleId, entity_type: s.entityType, description: s.description })),
      null,
      2,
    );
  }
  return scenarios.map((s) => `${s.name.padEnd(22)} rule ${s.ruleId.padEnd(22)} entity ${s.entityType.padEnd(7)} ${s.description}`).join('\n');
}

function summary(stats: SimulationStats, seed: number, topic: string, labelsFile: string | undefined): string {
  const list = (m: Record<string, number>) =>
    Object.entries(m)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ') || 'none';
  const secs = stats.elapsedMs / 1000;
  return [
    `${stats.aborted ? 'Stopped early: sent' : 'Sent'} ${stats.produced} messages to ${topic} in ${secs.toFixed(1)}s ` +
      `(${Math.round(stats.produced / Math.max(secs, 0.001))}/s)`,
    `  events ${stats.events} (distinct ${stats.distinctEvents}), redeliveries ${stats.redeliveries}, invalid ${stats.invalid}`,
    `  by type: ${list(stats.byType)}`,
    `  by status: ${list(stats.byStatus)}`,
    `  scenario events: ${list(stats.byScenario)}`,
    labelsFile ? `  labels: ${labelsFile}` : '',
    `  repeat with --seed ${seed}`,
  ]
    .filter(Boolean)
    .join('\n');
}

async function writeLabels(file: string, generator: TrafficGenerator, statement?: StatementLabels): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify({ ...generator.labels(), ...(statement ? { statement } : {}) }, null, 2) + '\n');
}

/** What --labels records about the statement written with --statement. */
interface StatementLabels {
  file: string;
  format: StatementFormat;
  channel: string;
  period_from: string;
  period_to: string;
  lines: number;
  breaks: InjectedBreak[];
  not_injected: { kind: string; reason: string }[];
}

const statementChannels: Record<StatementFormat, string> = { generic: 'alipay', wechat: 'wechat_pay', alipay: 'alipay', stripe: 'card' };

/**
 * The statement of what was sent: the generator is deterministic, so a second one with the same
 * options yields the same items, of which the first `produced` went out.
 */
async function writeSimulatedStatement(
  file: string,
  format: StatementFormat,
  channel: string,
  generator: TrafficGenerator,
  produced: number,
): Promise<StatementLabels> {
  const replay = createTrafficGenerator(generator.options);
  const events: PaymentEvent[] = [];
  for (let i = 0; i < produced; i++) {
    const item = replay.next();
    if (!item) break;
    if (item.event) events.push(item.event);
  }
  const startMs = generator.options.startMs;
  const beijing = format === 'wechat' || format === 'alipay';
  const offset = beijing ? 8 * 3_600_000 : 0;
  const fromMs = Math.floor((startMs + offset) / 86_400_000) * 86_400_000 - offset;
  const period = { fromMs, toMs: fromMs + 86_400_000 };
  const statement = simulatedStatement(events, channel, period, { currencies: format !== 'alipay', inject: true });
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, writeStatement(format, statement.lines, period));
  return {
    file,
    format,
    channel,
    period_from: new Date(period.fromMs).toISOString(),
    period_to: new Date(period.toMs).toISOString(),
    lines: statement.lines.length,
    breaks: statement.injected,
    not_injected: statement.notInjected,
  };
}

/** `paysentinel simulate`: paced, seeded traffic with optional scenarios, to Kafka. */
export const simulateCommand: Command = {
  name: 'simulate',
  help,
  async run(argv) {
    const { values } = parseCommandArgs('simulate', argv, {
      rate: { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      labels: { type: 'string' },
      'invalid-share': { type: 'string' },
      json: { type: 'boolean' },
      'list-scenarios': { type: 'boolean' },
      statement: { type: 'string' },
      'statement-format': { type: 'string' },
      'statement-channel': { type: 'string' },
    });
    const json = values.json === true;
    if (values['list-scenarios']) {
      process.stdout.write(listScenarios(json) + '\n');
      return 0;
    }
    const usage = (msg: string) => new PaysentinelError('USAGE', `${msg}\nRun "paysentinel simulate --help" for usage.`);
    const rate = numberOption('simulate', 'rate', values.rate, 200, 0);
    if (rate <= 0) throw usage(`--rate ${values.rate} must be above 0.`);
    const durationMs = values.duration === undefined ? 60_000 : parseDuration(values.duration);
    if (durationMs === null) throw usage(`--duration ${JSON.stringify(values.duration)} is not a duration such as 90s, 5m or 1500ms.`);
    const seed = values.seed === undefined ? randomInt(0, 2 ** 31) : numberOption('simulate', 'seed', values.seed, 0, 0);
    if (!Number.isSafeInteger(seed) || seed >= 2 ** 32) throw usage(`--seed ${values.seed} must be a whole number from 0 to 4294967295.`);
    const invalidShare = numberOption('simulate', 'invalid-share', values['invalid-share'], 0, 0);
    if (invalidShare > 1) throw usage(`--invalid-share ${values['invalid-share']} must be between 0 and 1.`);
    const scenarioNames = resolveScenarios(values.scenario ?? []);
    const statementFormat = (values['statement-format'] ?? 'generic') as StatementFormat;
    if (!formats.includes(statementFormat))
      throw usage(`--statement-format ${JSON.stringify(values['statement-format'])} is not one of ${formats.join(', ')}.`);
    if (values.statement === undefined && (values['statement-format'] !== undefined || values['statement-channel'] !== undefined))
      throw usage('--statement-format and --statement-channel need --statement FILE.');
    if (values['statement-channel'] !== undefined && statementFormat !== 'generic')
      throw usage('--statement-channel is for the generic format; the others imply their channel.');
    const statementChannel = values['statement-channel'] ?? statementChannels[statementFormat];

    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel, base: { component: 'simulate' } });
    const kafka = createKafka(config, logger, '-simulator');
    const admin = kafka.admin();
    // No idempotence: the pipeline must cope with at-least-once producers, and the
    // simulator already injects redeliveries on purpose.
    const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
    try {
      await admin.connect();
      await ensureTopics(admin, ingestTopics(config));
      await admin.disconnect();
      await producer.connect();
    } catch (err) {
      await admin.disconnect().catch(() => {});
      throw new PaysentinelError(
        'KAFKA_UNAVAILABLE',
        `cannot reach Kafka at ${config.kafkaBrokers.join(',')}: ${(err as Error).message} (start it with "paysentinel stack up")`,
        { retriable: true, cause: err },
      );
    }

    // The generator starts now: event times are wall-clock times of this run.
    const generator = createTrafficGenerator({ seed, rate, durationMs, startMs: Date.now(), scenarios: scenarioNames, invalidShare });
    process.stderr.write(
      `simulate: seed ${seed}, ${rate} msg/s for ${durationMs / 1000}s to ${config.eventsTopic}` +
        (scenarioNames.length ? `, scenarios: ${scenarioNames.join(', ')}` : '') +
        '\n',
    );
    const controller = new AbortController();
    let interrupts = 0;
    const onSignal = () => {
      // First Ctrl-C stops cleanly (labels still written); a second one gives up waiting.
      if (++interrupts > 1) process.exit(130);
      process.stderr.write('simulate: stopping (Ctrl-C again to force)\n');
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let stats: SimulationStats | undefined;
    try {
      stats = await runSimulation({
        producer,
        topic: config.eventsTopic,
        generator,
        logger,
        signal: controller.signal,
        onProgress: (p) => process.stderr.write(`simulate: ${p.produced} sent, ${Math.round(p.rate)}/s, ${Math.round(p.fraction * 100)}% done\n`),
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await producer.disconnect().catch((err) => logger.warn('simulate: disconnect failed', { err }));
      const statement =
        values.statement && stats ? await writeSimulatedStatement(values.statement, statementFormat, statementChannel, generator, stats.produced) : undefined;
      if (statement) {
        process.stderr.write(
          `simulate: statement ${statement.file} (${statement.format}, channel ${statement.channel}, ${statement.lines} lines), injected: ` +
            `${statement.breaks.map((b) => b.kind).join(', ')}\n`,
        );
      }
      if (values.labels) await writeLabels(values.labels, generator, statement);
    }
    if (json) {
      process.stdout.write(
        JSON.stringify({ seed, topic: config.eventsTopic, rate, durationMs, scenarios: scenarioNames, ...stats, labels: values.labels ?? null }) + '\n',
      );
    } else {
      process.stdout.write(summary(stats, seed, config.eventsTopic, values.labels) + '\n');
    }
    return stats.aborted ? 130 : 0;
  },
};
