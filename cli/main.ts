import { PaysentinelError } from '../errors/index.ts';
import type { Command } from './command.ts';

/** Subcommands are loaded lazily so `paysentinel --help` stays fast and side-effect free. */
const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./start.ts')).startCommand,
  simulate: async () => (await import('../simulator/cli.ts')).simulateCommand,
  stack: async () => (await import('../stack/cli.ts')).stackCommand,
  migrate: async () => (await import('./migrate.ts')).migrateCommand,
  demo: async () => (await import('./demo.ts')).demoCommand,
  bench: async () => (await import('../bench/cli.ts')).benchCommand,
  config: async () => (await import('./config.ts')).configCommand,
  cases: async () => (await import('../cases/cli.ts')).casesCommand,
  users: async () => (await import('../console/users-cli.ts')).createUsersCommand(),
  console: async () => (await import('../console/cli.ts')).consoleCommand,
  orders: async () => (await import('../console/orders-cli.ts')).ordersCommand,
  // A backtest replays events through detection: given to the rules command, which does not depend on it.
  rules: async () =>
    (await import('../rules/cli.ts')).createRulesCommand({ backtest: async (args) => (await import('../detection/backtest-cli.ts')).backtestCommand(args) }),
  analytics: async () => (await import('../analytics/cli.ts')).analyticsCommand,
  policy: async () => (await import('../analytics/policy-cli.ts')).policyCommand,
};

const summaries: Record<string, string> = {
  start: 'Run the pipeline (ingest Kafka -> ClickHouse) until SIGTERM/SIGINT',
  simulate: 'Produce realistic payment traffic, with injectable scenarios, to Kafka',
  stack: 'Start, stop or inspect the local Kafka and ClickHouse (up|down|status)',
  migrate: 'Apply the ClickHouse schema migrations and exit',
  demo: 'Start everything, stream a minute of traffic and print a summary',
  bench: 'Benchmarks that print figures (bench ingest)',
  config: 'Show the configuration variables, their defaults and current values',
  cases: 'List, show, acknowledge and resolve the cases detection opened',
  users: 'Support console users and API tokens (add|list|remove|token)',
  console: 'The support console: web inbox of cases, order look-ups, JSON API',
  orders: 'The whole story of one order: attempts, status reports, refunds, cases',
  rules: 'Validate, test and back-test the detection rules (validate|test|backtest)',
  analytics: 'Payment rates (analytics rates) and scheduled jobs run by hand (analytics run rates)',
  policy: 'The retry policy tuned from evidence (policy show | policy diff)',
};

export const usage = `paysentinel: payment anomaly detection and analytics (Kafka -> ClickHouse)

Usage: paysentinel <command> [options]

Commands:
${Object.entries(summaries)
  .map(([name, s]) => `  ${name.padEnd(10)} ${s}`)
  .join('\n')}

Run "paysentinel <command> --help" for a command's options.
Configuration comes from environment variables: "paysentinel config" lists them.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage + '\n');
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`Unknown command "${name}".\n\n${usage}\n`);
    return 2;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help.trim() + '\n');
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof PaysentinelError) {
      process.stderr.write(`paysentinel ${name}: ${err.message}\n`);
      return err.code === 'USAGE' ? 2 : 1;
    }
    throw err;
  }
}
