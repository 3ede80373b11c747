import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { createKafka } from '../../kafka/index.ts';
import { silentLogger } from '../../log/index.ts';
import { parseStatement } from '../../statements/formats.ts';
import { breakKinds } from '../../statements/match.ts';
import { configFor, isolatedEnv, repoRoot } from './helpers.ts';

const env = isolatedEnv();
const config = configFor(env);
const dir = mkdtempSync(join(tmpdir(), 'statements-simulate-'));

afterAll(async () => {
  const admin = createKafka(config, silentLogger, '-test').admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [config.eventsTopic, config.dlqTopic] }).catch(() => {});
  await admin.disconnect();
});

test('simulate --statement writes the statement of the traffic it sent, its injected breaks in the labels file', () => {
  const file = join(dir, 'stripe.csv');
  const labelsFile = join(dir, 'labels.json');
  const out = spawnSync(
    process.execPath,
    [
      'bin/paysentinel.mjs',
      'simulate',
      '--rate',
      '400',
      '--duration',
      '5s',
      '--seed',
      '11',
      '--scenario',
      'duplicate-charge',
      '--statement',
      file,
      '--statement-format',
      'stripe',
      '--labels',
      labelsFile,
      '--json',
    ],
    { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 },
  );
  expect(out.status, out.stderr).toBe(0);
  const labels = JSON.parse(readFileSync(labelsFile, 'utf8'));
  expect(labels.scenarios.map((s: { scenario: string }) => s.scenario)).toEqual(['duplicate-charge']);
  expect(labels.statement).toMatchObject({ file, format: 'stripe', channel: 'card' });
  // Every kind is either injected (on its own order) or said not to be, with the reason.
  const kinds = [...labels.statement.breaks.map((b: { kind: string }) => b.kind), ...labels.statement.not_injected.map((n: { kind: string }) => n.kind)];
  expect(kinds.sort()).toEqual([...breakKinds].sort());
  expect(labels.statement.breaks.length).toBeGreaterThanOrEqual(5);
  expect(new Set(labels.statement.breaks.map((b: { order_id: string }) => b.order_id)).size).toBe(labels.statement.breaks.length);
  const parsed = parseStatement('stripe', readFileSync(file));
  expect(parsed.ok).toBe(true);
  if (parsed.ok) expect(parsed.statement.lines.filter((l) => l.status === 'settled')).toHaveLength(labels.statement.lines);
});
