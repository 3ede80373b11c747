import { loadConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { parseCommandArgs, type Command } from './command.ts';
import { startPipeline } from './pipeline.ts';

export const startCommand: Command = {
  name: 'start',
  summary: 'Run the pipeline until SIGTERM/SIGINT',
  help: `Usage: paysentinel start

Runs the pipeline in the foreground: applies ClickHouse migrations, creates missing topics,
consumes payments.events into paysentinel.payment_events, sends invalid messages to the
dead-letter topic, and serves /metrics and /healthz. Logs are JSON lines on stderr.

On SIGTERM or SIGINT it stops fetching, writes and commits what is buffered, and disconnects.
A second signal exits at once (nothing uncommitted is lost: it is re-read on the next start).

Configuration: environment variables, see "paysentinel config".`,
  async run(argv) {
    parseCommandArgs('start', argv, {});
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel, base: { pid: process.pid } });
    const pipeline = await startPipeline(config, logger);
    logger.info('pipeline running', { topic: config.eventsTopic, group: config.kafkaGroupId, database: config.clickhouseDatabase, scheduled: ['analytics:rates (every minute)', 'analytics:reconcile (every 5 min)', 'analytics:retry-policy (hourly)', 'analytics:baselines (hourly)', 'analytics:daily-report (00:10 UTC)'] });

    const signalled = new Promise<string>((resolve) => {
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        process.once(sig, () => {
          resolve(sig);
          process.once(sig, () => {
            logger.warn('second signal: exiting without waiting');
            process.exit(130);
          });
        });
      }
    });
    const outcome = await Promise.race([signalled.then((sig) => ({ sig })), pipeline.failed.then((err) => ({ err }))]);
    if ('err' in outcome) {
      logger.error('pipeline failed', { err: outcome.err });
      await pipeline.stop().catch(() => {});
      return 1;
    }
    logger.info('shutting down', { signal: outcome.sig });
    await pipeline.stop();
    logger.info('stopped cleanly');
    return 0;
  },
};
