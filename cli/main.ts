import { PaysentinelError } from '../errors/index.ts';
import type { Command } from './command.ts';

/**
 * Every subcommand, once: its one-line summary for the command list, and how to load it. Loaded
 * lazily so `paysentinel --help` stays fast (importing them all takes seconds) and side-effect
 * free; the full `--help` text lives with each command.
 */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  start: {
    summary: 'Run the pipeline (ingest, detection, scheduled jobs, or some of them) until SIGTERM/SIGINT',
    load: async () => (await import('./start.ts')).startCommand,
  },
  simulate: {
    summary: 'Produce realistic payment traffic, with injectable scenarios, to Kafka',
    load: async () => (await import('../simulator/cli.ts')).simulateCommand,
  },
  stack: {
    summary: 'Start, stop or inspect the local Kafka and ClickHouse (up|down|status)',
    load: async () => (await import('../stack/cli.ts')).stackCommand,
  },
  migrate: { summary: 'Apply the ClickHouse schema migrations and exit', load: async () => (await import('./migrate.ts')).migrateCommand },
  demo: { summary: 'Start everything, stream a minute of traffic and print a summary', load: async () => (await import('./demo.ts')).demoCommand },
  bench: { summary: 'Benchmarks that print figures (bench ingest|detect)', load: async () => (await import('../bench/cli.ts')).benchCommand },
  config: { summary: 'Show the configuration variables, their defaults and current values', load: async () => (await import('./config.ts')).configCommand },
  cases: { summary: 'List, show, acknowledge and resolve the cases detection opened', load: async () => (await import('../cases/cli.ts')).casesCommand },
  users: {
    summary: 'Support console users and API tokens (add|list|remove|token)',
    load: async () => (await import('../console/users-cli.ts')).createUsersCommand(),
  },
  console: {
    summary: 'The support console: web inbox of cases, order look-ups, JSON API',
    load: async () => (await import('../console/cli.ts')).consoleCommand,
  },
  orders: {
    summary: 'The whole story of one order: attempts, status reports, refunds, cases',
    load: async () => (await import('../console/orders-cli.ts')).ordersCommand,
  },
  rules: {
    summary: 'Validate, test and back-test the detection rules (validate|test|backtest)',
    // A backtest replays events through detection: given to the rules command, which does not depend on it.
    load: async () =>
      (await import('../rules/cli.ts')).createRulesCommand({ backtest: async (args) => (await import('../detection/backtest-cli.ts')).backtestCommand(args) }),
  },
  analytics: {
    summary: 'Payment rates (analytics rates) and scheduled jobs run by hand (analytics run rates)',
    load: async () => (await import('../analytics/cli.ts')).analyticsCommand,
  },
  automation: {
    summary: 'Pause or resume automatic handling without a restart, and see the commands sent (status|pause|resume)',
    load: async () => (await import('../automation/cli.ts')).automationCommand,
  },
  policy: {
    summary: 'The retry policy tuned from evidence (policy show | policy diff)',
    load: async () => (await import('../analytics/policy-cli.ts')).policyCommand,
  },
  statements: {
    summary: "Import platforms' statements, reconcile them (import|reconcile|breaks|summary)",
    load: async () => (await import('../statements/cli.ts')).statementsCommand,
  },
};

export const usage = `paysentinel: payment anomaly detection and analytics (Kafka -> ClickHouse)

Usage: paysentinel <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run "paysentinel <command> --help" for a command's options.
Configuration comes from environment variables: "paysentinel config" lists them.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`Unknown command "${name}".\n\n${usage}\n`);
    return 2;
  }
  const command = await entry.load();
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
