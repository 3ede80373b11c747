import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numberOption, parseCommandArgs, type Command } from '../cli/command.ts';
import { parseDuration } from '../rules/duration.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createLocalStack, type StackStatus } from './index.ts';
import { KAFKA_VERSION } from './kafka.ts';

/** The repository root: stack/kafka/pom.xml and the .cache/.stack folders are relative to it. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const help = `paysentinel stack: start, stop or inspect the local Kafka and ClickHouse

Usage:
  paysentinel stack up     [--timeout 120s] [--json]
  paysentinel stack down   [--json]
  paysentinel stack status [--json]

up      Makes Kafka (KAFKA_BROKERS) and ClickHouse (CLICKHOUSE_URL) answer. A service that
        already answers is used as it is; otherwise, if its address is on this machine,
        it is started in the background:
          Kafka ${KAFKA_VERSION} single-node KRaft (needs java 17+; jars fetched once with Maven
            into .cache/kafka/libs), data and logs in .stack/kafka/
          ClickHouse from the clickhouse-server package (installed with apt-get when
            missing and running as root), data and logs in .stack/clickhouse/
        Waits until each answers, then prints where it listens. Running it again starts
        nothing new.
down    Stops only the services that "stack up" started (pid files in .stack/); data is
        kept for the next "up". Services started by anyone else are left alone.
status  Shows, per service, whether it answers, whether we started it, and where it
        listens. Exit code 0 when both answer, 1 otherwise.

Options:
  --timeout DURATION  How long "up" waits for a started service (default 120s; 90s, 3m, ...)
  --json              Print the status as JSON on stdout instead of a table
  -h, --help          Show this help

Environment: KAFKA_BROKERS, CLICKHOUSE_URL, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD as for the
pipeline ("paysentinel config"), plus CLICKHOUSE_NATIVE_PORT (default 9000) for the local
ClickHouse's native-protocol port.

Examples:
  paysentinel stack up && npm test
  paysentinel stack status --json
  CLICKHOUSE_URL=http://127.0.0.1:18123 CLICKHOUSE_NATIVE_PORT=19000 paysentinel stack up`;

/** A small fixed-width table: one line per service. */
export function formatStatusTable(status: StackStatus): string {
  const rows = Object.values(status.services).map((s) => [
    s.name,
    s.answering ? 'yes' : 'no',
    s.startedByUs ? `yes (pid ${s.pid})` : 'no',
    s.endpoint,
    s.detail,
  ]);
  const header = ['service', 'answering', 'started by us', 'listens at', 'detail'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `paysentinel stack up|down|status`. */
export const stackCommand: Command = {
  name: 'stack',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs('stack', argv, { json: { type: 'boolean', default: false }, timeout: { type: 'string' } }, true);
    const [action, ...extra] = positionals;
    if (action === undefined || !['up', 'down', 'status'].includes(action) || extra.length > 0) {
      throw new PaysentinelError('USAGE', `expected one of: up, down, status.\nRun "paysentinel stack --help" for usage.`);
    }
    let timeoutMs = 120_000;
    if (values.timeout !== undefined) {
      const parsed = parseDuration(values.timeout);
      timeoutMs = numberOption('stack', 'timeout', parsed === null ? values.timeout : String(parsed), 120_000, 1);
    }
    const config = loadConfig();
    const stack = createLocalStack({
      config,
      rootDir: projectRoot,
      logger: createLogger({ level: config.logLevel }),
      startTimeoutMs: timeoutMs,
    });
    const print = (status: StackStatus) => process.stdout.write((values.json ? JSON.stringify(status, null, 2) : formatStatusTable(status)) + '\n');

    if (action === 'up') {
      const status = await stack.up();
      if (values.json) print(status);
      else process.stderr.write(`\n${formatStatusTable(status)}\n`);
      return 0;
    }
    if (action === 'down') {
      await stack.down();
      if (values.json) print(await stack.status());
      return 0;
    }
    const status = await stack.status();
    print(status);
    return status.ok ? 0 : 1;
  },
};
