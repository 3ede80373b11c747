import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { repoRoot } from './helpers.ts';

const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['bin/paysentinel.mjs', ...args], { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });

describe('the paysentinel command', () => {
  test('lists its commands, and every command explains itself with --help', () => {
    const top = run(['--help']);
    expect(top.status).toBe(0);
    const names = [...top.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]);
    expect(names).toEqual(expect.arrayContaining(['start', 'simulate', 'stack', 'migrate', 'demo', 'bench', 'config']));
    for (const name of names) {
      const help = run([name!, '--help']);
      expect(help.status, name).toBe(0);
      expect(help.stdout, name).toMatch(/Usage/i);
    }
  });

  test('an unknown command or flag is a usage error (exit 2) that points at --help', () => {
    const unknown = run(['frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown command "frobnicate"/);
    const flag = run(['start', '--bogus']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/--bogus[\s\S]*paysentinel start --help/);
  });

  test('a bad configuration stops start-up with what to fix, before connecting anywhere', () => {
    const bad = run(['start'], { KAFKA_TOPIC_PARTITIONS: 'six', CLICKHOUSE_URL: 'not a url' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/KAFKA_TOPIC_PARTITIONS="six" is invalid: expected a whole number/);
    expect(bad.stderr).toMatch(/CLICKHOUSE_URL="not a url" is invalid: expected an http\(s\) URL/);
  });

  test('config --json shows the values in effect and hides secrets', () => {
    const out = run(['config', '--json'], { CLICKHOUSE_PASSWORD: 's3cret', INGEST_BATCH_MAX_ROWS: '123' });
    expect(out.status).toBe(0);
    const values = JSON.parse(out.stdout);
    expect(values.INGEST_BATCH_MAX_ROWS).toBe(123);
    expect(values.CLICKHOUSE_PASSWORD).toBe('(set)');
    expect(out.stdout).not.toContain('s3cret');
  });
});
