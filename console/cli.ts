import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { startConsole } from './server.ts';

export const consoleCommand: Command = {
  name: 'console',
  help: `Usage: paysentinel console

Serves the support console on CONSOLE_HOST:CONSOLE_PORT (default http://127.0.0.1:8080): the
case inbox, case pages with evidence, history and actions, order look-ups, and the JSON API
under /api/v1 (see the README). Everyone logs in: add users with "paysentinel users add";
scripts send "Authorization: Bearer TOKEN" (from "paysentinel users token NAME").
CONSOLE_SESSION_SECRET must be set (the same value on every console instance).
Runs until SIGTERM/SIGINT.`,
  async run(argv) {
    parseCommandArgs('console', argv, {});
    const config = loadConfig();
    const logger = createLogger({ level: config.logLevel, base: { pid: process.pid } });
    const running = await startConsole(config, logger);
    logger.info('console listening', { url: running.url, database: config.clickhouseDatabase });
    process.stdout.write(`Support console at ${running.url}\n`);
    const sig = await new Promise<string>((resolve) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s));
    });
    logger.info('shutting down', { signal: sig });
    await running.stop();
    return 0;
  },
};
