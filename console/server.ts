import { Partitioners } from 'kafkajs';
import type { FastifyInstance } from 'fastify';
import { createCaseStore } from '../cases/index.ts';
import { createManualCommands } from '../automation/index.ts';
import type { Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createKafka, ensureTopics } from '../kafka/index.ts';
import type { Logger } from '../log/index.ts';
import { defaultFeaturesPath, loadFeatureCatalog, loadRuleSetOrThrow } from '../rules/index.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { createConsoleApp } from './app.ts';
import { customerMessagesOf } from './customer-message.ts';
import { ruleWindows } from './related.ts';
import { createCaseFeed } from './live.ts';
import { createUserStore } from './users.ts';

export interface RunningConsole {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:8080. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the support console: migrates ClickHouse, connects a Kafka producer for case changes
 * and listens on CONSOLE_HOST:CONSOLE_PORT (port 0 picks a free one). Holds no state of its
 * own, so several consoles can run beside each other and beside `paysentinel start`.
 */
export async function startConsole(config: Config, logger: Logger): Promise<RunningConsole> {
  if (!config.consoleSessionSecret) {
    throw new PaysentinelError(
      'CONFIG_INVALID',
      'CONSOLE_SESSION_SECRET is required by the console: set it to the same random value for every console instance, ' +
        'e.g. `export CONSOLE_SESSION_SECRET=$(openssl rand -hex 32)`.',
    );
  }
  const users = createUserStore(config.consoleUsersFile);
  if (users.list().length === 0)
    logger.warn('the console has no users yet: add one with "paysentinel users add NAME --role support --password-stdin"', { file: config.consoleUsersFile });
  const catalog = await loadFeatureCatalog(config.featuresPath || defaultFeaturesPath);
  if (!catalog.ok)
    throw new PaysentinelError(
      'RULES_INVALID',
      `The feature catalog is invalid: ${catalog.problems.map((p) => `${p.file} ${p.path}: ${p.message}`).join('; ')}`,
    );
  const factDescriptions = new Map([...catalog.catalog.facts.values()].map((f) => [f.id, f.def.description]));
  // The rules as they are at start-up: their customer messages (and the rules page) come from them.
  const ruleSet = await loadRuleSetOrThrow({ rulesPath: config.rulesPath || undefined, featuresPath: config.featuresPath || undefined });

  const clickhouse = createClickHouse(config);
  const kafka = createKafka(config, logger, '-console');
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  try {
    await migrateDatabase(config, logger);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(
      admin,
      [config.casesTopic, config.commandsTopic].map((topic) => ({ topic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication })),
    ).finally(() => admin.disconnect());
    await producer.connect();
    const cases = createCaseStore({ clickhouse, database: config.clickhouseDatabase, producer, topic: config.casesTopic });
    const commands = createManualCommands({ clickhouse, database: config.clickhouseDatabase, producer, config, cases });
    const feed = createCaseFeed({ clickhouse, database: config.clickhouseDatabase, intervalMs: config.consoleLiveMs, logger });
    const app = await createConsoleApp({
      feed,
      users,
      cases,
      clickhouse,
      database: config.clickhouseDatabase,
      factDescriptions,
      customerMessages: customerMessagesOf(ruleSet),
      ruleWindows: ruleWindows(ruleSet),
      rules: ruleSet.rules,
      sessionSecret: config.consoleSessionSecret,
      sessionMinutes: config.consoleSessionMinutes,
      loginAttemptsPerMinute: config.consoleLoginAttempts,
      logger,
      commands,
    });
    const url = await app.listen({ host: config.consoleHost, port: config.consolePort });
    return {
      app,
      url,
      async stop() {
        await app.close();
        feed.stop();
        await producer.disconnect();
        await clickhouse.close();
      },
    };
  } catch (err) {
    await producer.disconnect().catch(() => {});
    await clickhouse.close().catch(() => {});
    throw err;
  }
}
