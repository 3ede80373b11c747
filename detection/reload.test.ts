import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { createLogger } from '../log/index.ts';
import { defaultFeaturesPath, defaultRulesPath, loadRuleSetOrThrow, type RuleSet } from '../rules/index.ts';
import { watchRules } from './reload.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'rules-'));
  dirs.push(dir);
  cpSync(defaultRulesPath, dir, { recursive: true });
  const paths = { rulesPath: dir, featuresPath: defaultFeaturesPath };
  let current: RuleSet = await loadRuleSetOrThrow(paths);
  const logs: string[] = [];
  const reloader = watchRules({
    paths,
    logger: createLogger({ level: 'info', write: (l) => logs.push(l) }),
    current: () => current,
    onChange: (next) => (current = next),
    debounceMs: 50,
  });
  const file = join(dir, 'retry_storm.json');
  return { reloader, logs, file, current: () => current };
}

test('a valid edit replaces the running rules; an invalid one is rejected and the old rules keep running', async () => {
  const { reloader, logs, file, current } = await setup();
  const before = current();
  const rule = JSON.parse(readFileSync(file, 'utf8'));
  rule.severity = 'critical';
  writeFileSync(file, JSON.stringify(rule, null, 2));
  expect(await reloader.reload()).toBe(true);
  expect(current().version).not.toBe(before.version);
  expect(current().rules.find((r) => r.id === 'retry_storm')!.severity).toBe('critical');

  const good = current();
  writeFileSync(file, JSON.stringify({ ...rule, cooldown: 'soon' }, null, 2));
  expect(await reloader.reload()).toBe(false);
  expect(current()).toBe(good);
  const rejected = logs.map((l) => JSON.parse(l)).find((l) => l.msg.startsWith('rule change rejected'));
  expect(rejected.problems.join('\n')).toMatch(/retry_storm\.json.*cooldown/);
  reloader.stop();
});

test('saving a file is enough: the watcher reloads by itself', async () => {
  const { reloader, file, current } = await setup();
  const before = current().version;
  const rule = JSON.parse(readFileSync(file, 'utf8'));
  writeFileSync(file, JSON.stringify({ ...rule, title: rule.title + ' (edited)' }, null, 2));
  await expect.poll(() => current().version, { timeout: 5_000 }).not.toBe(before);
  reloader.stop();
});
