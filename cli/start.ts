import { loadConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { parseCommandArgs, type Command } from './command.ts';
import { parseRoles, startPipeline } from './pipeline.ts';

export const startCommand: Command = {
  name: 'start',
  help: `Usage: paysentinel start [--roles ingest,detect,jobs]

Runs the pipeline in the foreground: applies ClickHouse migrations, creates missing topics,
then runs its roles, and serves /metrics and /healthz. Logs are JSON lines on stderr.

Roles (default: all three):
  ingest   consumes payments.events into paysentinel.payment_events, sends invalid messages
           to the dead-letter topic; several ingest instances share the partitions of one
           consumer group (KAFKA_GROUP_ID)
  detect   live detection and the cases (with CASE_WEBHOOK_URL, their webhook), on the one
           instance elected detection leader among those with this role
  jobs     the scheduled analytics (rates, reconcile, retry policy, baselines, daily report),
           on the one instance elected jobs leader among those with this role

Example, ingest in two processes and the rest in a third:
  paysentinel start --roles ingest &
  paysentinel start --roles ingest &
  paysentinel start --roles detect,jobs

On SIGTERM or SIGINT it stops fetching, writes and commits what is buffered, and disconnects.
A second signal exits at once (nothing uncommitted is lost: it is re-read on the next start).

Configuration: environment variables, see "paysentinel config".`,
  async run(argv) {
    const { values } = parseCommandArgs('start', argv, { roles: { type: 'string' } });
    const roles = parseRoles(values.roles);
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel, base: { pid: process.pid } });
    const pipeline = await startPipeline(config, logger, roles);
    logger.info('pipeline running', { roles: [...roles], topic: config.eventsTopic, group: config.kafkaGroupId, database: config.clickhouseDatabase });

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
