import { mkdirSync, mkdtempSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/index.ts';
import { formatStatusTable } from './cli.ts';
import { createLocalStack } from './index.ts';

const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A stack pointed at loopback ports nothing listens on, in a throw-away root. */
const closedStack = () => {
  const rootDir = mkdtempSync(join(tmpdir(), 'paysentinel-stack-'));
  temps.push(rootDir);
  const lines: string[] = [];
  const stack = createLocalStack({
    config: { kafkaBrokers: ['127.0.0.1:1'], clickhouseUrl: 'http://127.0.0.1:1', clickhouseUser: 'default', clickhousePassword: '' },
    rootDir,
    logger: silentLogger,
    progress: (line) => lines.push(line),
  });
  return { stack, rootDir, lines };
};

describe('createLocalStack', () => {
  it('reports services that do not answer, without starting anything', async () => {
    const { stack, rootDir } = closedStack();
    const status = await stack.status();
    expect(status.ok).toBe(false);
    expect(status.services.kafka).toMatchObject({ name: 'kafka', endpoint: '127.0.0.1:1', local: true, answering: false, startedByUs: false, pid: null });
    expect(status.services.clickhouse).toMatchObject({ name: 'clickhouse', endpoint: 'http://127.0.0.1:1', local: true, answering: false, startedByUs: false });
    expect(existsSync(join(rootDir, '.stack'))).toBe(false);
  });

  it('stops nothing it did not start and clears stale pid files', async () => {
    const { stack, rootDir, lines } = closedStack();
    const pidFile = join(rootDir, '.stack', 'kafka', 'pid');
    mkdirSync(join(rootDir, '.stack', 'kafka'), { recursive: true });
    // Our own pid is alive but is not a Kafka broker: it must not be signalled.
    writeFileSync(pidFile, `${process.pid}\n`);
    expect(await stack.stopKafka()).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
    expect(await stack.stopClickHouse()).toBe(false);
    expect(lines.join('\n')).toMatch(/kafka: not started by us/);
  });
});

describe('formatStatusTable', () => {
  it('prints one aligned row per service', async () => {
    const { stack } = closedStack();
    const table = formatStatusTable(await stack.status()).split('\n');
    expect(table[0]).toMatch(/^service\s+answering\s+started by us\s+listens at\s+detail$/);
    expect(table[1]).toMatch(/^kafka\s+no\s+no\s+127\.0\.0\.1:1\s/);
    expect(table[2]).toMatch(/^clickhouse\s+no\s+no\s+http:\/\/127\.0\.0\.1:1\s/);
    expect(table[1]!.indexOf('127.0.0.1')).toBe(table[2]!.indexOf('http://'));
  });
});
