import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test as base, vi } from 'vitest';
import { createRulesCommand } from './cli.ts';

// Backtests replay stored events (detection/backtest-cli.ts) and are tested against the stack.
const rulesCommand = createRulesCommand({
  backtest: async () => {
    throw new Error('no backtest in unit tests');
  },
});

/** A scratch folder per test, removed afterwards. */
const test = base.extend<{ dir: string }>({
  // eslint-disable-next-line no-empty-pattern
  dir: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'paysentinel-rules-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

/** Runs the command and captures what it printed on stdout. */
async function run(argv: string[]): Promise<{ code: number; stdout: string }> {
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    return { code: await rulesCommand.run(argv), stdout };
  } finally {
    spy.mockRestore();
  }
}

const bundled = (path: string) => readFile(new URL(path, import.meta.url), 'utf8');

afterEach(() => vi.restoreAllMocks());

describe('paysentinel rules validate', () => {
  test('the bundled rules are valid: exit 0 and a line per rule', async () => {
    const { code, stdout } = await run(['validate']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^OK: 14 rules valid \(14 enabled\), rule set version [0-9a-f]{12}/);
    expect(stdout).toMatch(/device_failure_spike\s+[0-9a-f]{12}\s+device\s+medium/);
    // Rules on statement breaks say so: live detection never evaluates them.
    expect(stdout).toMatch(
      /charged_not_recorded\s+[0-9a-f]{12}\s+order\s+critical\s+notify_support\s+cooldown 10m\s+on statement breaks\s+\+ customer message\n/,
    );
    // Order rules with a <rule_id>.message.txt say so; the others have no customer message.
    expect(stdout).toMatch(/charged_but_failed\s+[0-9a-f]{12}\s+order\s+critical\s+notify_support\s+cooldown 24h\s+\+ customer message\n/);
    expect(stdout).not.toMatch(/ip_amount_probing.*customer message/);
    expect(stdout).not.toMatch(/charged_but_failed.*on statement breaks/);
  });

  test('a broken rule: exit 1, with file, JSON path and fix', async ({ dir }) => {
    const rule = JSON.parse(await bundled('./definitions/retry_storm.json'));
    rule.conditions.all[0].fact = 'user_max_attempts_per_order';
    rule.cooldown = 'ten minutes';
    await writeFile(join(dir, 'retry_storm.json'), JSON.stringify(rule));
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toContain('2 problems:');
    expect(stdout).toContain(
      `${join(dir, 'retry_storm.json')} at $.conditions.all[0].fact: unknown fact "user_max_attempts_per_order". Did you mean ` +
        `"user_max_attempts_per_order_1m"?`,
    );
    expect(stdout).toContain(`${join(dir, 'retry_storm.json')} at $.cooldown: cooldown "ten minutes" is not a duration`);
  });

  test('--json prints a machine-readable result', async ({ dir }) => {
    const ok = await run(['validate', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      ok: true,
      rules: expect.arrayContaining([expect.objectContaining({ id: 'risk_review', entity: 'order', enabled: true })]),
    });
    await writeFile(join(dir, 'x.json'), '{ nope');
    const bad = await run(['validate', dir, '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problems: [{ path: '$', message: expect.stringMatching(/not valid JSON/) }] });
  });

  test('an empty folder is an error, not a silent pass', async ({ dir }) => {
    const { code, stdout } = await run(['validate', dir]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/no \*\.json rule files here/);
  });
});

describe('paysentinel rules test', () => {
  test('the bundled fixtures pass: exit 0 with a PASS line per case', async () => {
    const { code, stdout } = await run(['test']);
    expect(code).toBe(0);
    expect(stdout).toContain('PASS  does not fire: 2 attempts and 2 failures is not a spike (below the minimum volume)');
    expect(stdout).not.toContain('FAIL');
    expect(stdout).toMatch(/\n\d+ cases in 14 files: \d+ passed, 0 failed\n$/);
  });

  test('a loosened threshold makes the negative fixture fail: exit 1 and says why', async ({ dir }) => {
    const rules = join(dir, 'rules');
    await mkdir(rules);
    for (const id of ['retry_storm']) {
      const rule = JSON.parse(await bundled(`./definitions/${id}.json`));
      rule.conditions.all[0].value = 2;
      await writeFile(join(rules, `${id}.json`), JSON.stringify(rule));
    }
    const fixture = join(dir, 'retry_storm.json');
    await writeFile(fixture, await bundled('./tests/retry_storm.json'));
    const { code, stdout } = await run(['test', fixture, '--rules', rules]);
    expect(code).toBe(1);
    expect(stdout).toContain('FAIL  does not fire: a normal retry (2 attempts) after a network error');
    expect(stdout).toContain('expected retry_storm not to fire, but it did');
    expect(stdout).toMatch(/5 cases in 1 file: 4 passed, 1 failed/);
  });

  test('--json reports every case', async () => {
    const { code, stdout } = await run(['test', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.ok).toBe(true);
    expect(report.failed).toBe(0);
    expect(report.results.length).toBe(report.passed);
  });

  test('an invalid fixture is reported with its path: exit 1', async ({ dir }) => {
    const fixture = join(dir, 'f.json');
    await writeFile(fixture, JSON.stringify({ cases: [{ name: 'n', entity: 'order', entity_id: 'o', facts: {}, expect: ['risk_reveiw'] }] }));
    const { code, stdout } = await run(['test', fixture]);
    expect(code).toBe(1);
    expect(stdout).toContain(`${fixture} at $.cases[0].expect[0]: no rule "risk_reveiw" in the rule set. Did you mean "risk_review"?`);
  });
});

describe('usage errors', () => {
  test.each([[[]], [['lint']], [['validate', 'a', 'b']], [['validate', '--rules', 'x']], [['test', '--verbose']]])('%j is a USAGE error', async (argv) => {
    await expect(rulesCommand.run(argv)).rejects.toMatchObject({ code: 'USAGE' });
  });
});
