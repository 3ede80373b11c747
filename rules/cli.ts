import { relative } from 'node:path';
import { parseCommandArgs, type Command } from '../cli/command.ts';
import { PaysentinelError } from '../errors/index.ts';
import { defaultFixturesPath, loadFixtures, runFixtures } from './fixtures.ts';
import { loadRuleSet, type RuleSet } from './load.ts';
import { formatProblem, type RuleProblem } from './problems.ts';
import { formatDuration } from './render.ts';

const help = `Usage: paysentinel rules <validate|test|backtest> [PATH] [options]

Checks the detection rules the risk team edits: one JSON file per rule (json-rules-engine
conditions plus metadata), reading facts defined in a feature catalog (features.json).

  validate [PATH]   Validate a folder of rule files (or one file): schema, unknown facts
                    and operators, operator values, placeholders, cooldowns, duplicate ids,
                    and the customer messages beside them (<rule_id>.message.txt: known
                    {placeholders} only, and only for an order rule of the set).
                    Default PATH: the bundled rules/definitions.
  test [PATH]       Run fixture files (facts in, expected rule hits out) from a folder or
                    one file against the rules. Default PATH: the bundled rules/tests.
  backtest          Replay the events stored in ClickHouse between --from and --to through
                    a candidate rule set (--rules) and through the rules now live (RULES_PATH,
                    default the bundled rules), exactly as live detection sees them: tick by
                    tick, each tick reading only rows written by then. Prints, per rule, the
                    cases each set would have opened, the cases live detection recorded in
                    that time, and sample entities. Nothing is stored or published.
                    Progress goes to stderr.

Options:
  --rules DIR        test: rules to test against (default the bundled rules/definitions);
                     backtest: the candidate rule set (default the live rules, RULES_PATH)
  --features FILE    Feature catalog (default the bundled rules/features.json); for backtest,
                     the candidate's (the live rules keep FEATURES_PATH)
  --from T, --to T   backtest: the time range (RFC 3339 with a zone, a date, now or now-1h)
  --step DURATION    backtest: simulated tick interval (default 1s; coarser is faster but
                     may decide a case a little later than live did)
  --json             Print the result as JSON on stdout

Exit status: 0 when everything is valid / every case passes / the backtest ran, 1 otherwise
(invalid rules, failing cases, ClickHouse unreachable), 2 on usage errors.

Examples:
  paysentinel rules validate
  paysentinel rules validate my-rules/ --json
  paysentinel rules test rules/tests/device_failure_spike.json --rules my-rules/
  paysentinel rules backtest --from now-2h --to now --rules my-rules/`;

const out = (text: string) => process.stdout.write(text + '\n');
/** Paths relative to the working directory when that is shorter, so output stays readable. */
const show = (file: string) => {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && rel.length < file.length ? rel : file;
};
const shown = (p: RuleProblem): RuleProblem => ({ ...p, file: show(p.file) });

function printProblems(problems: readonly RuleProblem[], json: boolean): number {
  if (json) out(JSON.stringify({ ok: false, problems: problems.map(shown) }, null, 2));
  else {
    out(`${problems.length} problem${problems.length === 1 ? '' : 's'}:`);
    for (const p of problems) out(`  ${formatProblem(shown(p))}`);
  }
  return 1;
}

function ruleSummary(ruleSet: RuleSet) {
  return ruleSet.rules.map((r) => ({
    id: r.id,
    version: r.version,
    entity: r.entity,
    severity: r.severity,
    action: r.action,
    command: r.command?.type ?? null,
    escalate_after_ms: r.escalateAfterMs ?? null,
    resolve_when: r.resolveWhen !== undefined,
    enabled: r.enabled,
    cooldown: r.cooldown,
    source: r.source,
    file: show(r.file),
    customer_message: r.customerMessage ? show(r.customerMessage.file) : null,
  }));
}

/** "automatic requery_status (10m)" or the action. */
const handlingOf = (r: RuleSet['rules'][number]): string =>
  r.command ? `${r.action} ${r.command.type} (${formatDuration(r.escalateAfterMs ?? 0)})${r.alsoNotifySupport ? ' +support' : ''}` : r.action;

async function validate(path: string | undefined, features: string | undefined, json: boolean): Promise<number> {
  const result = await loadRuleSet({ rulesPath: path, featuresPath: features });
  if (!result.ok) return printProblems(result.problems, json);
  const { ruleSet } = result;
  if (json) {
    out(JSON.stringify({ ok: true, version: ruleSet.version, rules: ruleSummary(ruleSet) }, null, 2));
    return 0;
  }
  const enabled = ruleSet.rules.filter((r) => r.enabled).length;
  const n = ruleSet.rules.length;
  out(`OK: ${n} rule${n === 1 ? '' : 's'} valid (${enabled} enabled), rule set version ${ruleSet.version}`);
  for (const r of ruleSet.rules) {
    out(
      `  ${r.id.padEnd(24)} ${r.version}  ${r.entity.padEnd(8)} ${r.severity.padEnd(9)} ${handlingOf(r).padEnd(30)} cooldown ` +
        `${r.cooldown}${r.source === 'statements' ? '  on statement breaks' : ''}${r.resolveWhen ? '  resolves itself' : ''}` +
        `${r.customerMessage ? '  + customer message' : ''}${r.enabled ? '' : '  (disabled)'}`,
    );
  }
  return 0;
}

async function test(path: string | undefined, rules: string | undefined, features: string | undefined, json: boolean): Promise<number> {
  const loaded = await loadRuleSet({ rulesPath: rules, featuresPath: features });
  if (!loaded.ok) return printProblems(loaded.problems, json);
  const fixtures = await loadFixtures(path ?? defaultFixturesPath, loaded.ruleSet);
  if (!fixtures.ok) return printProblems(fixtures.problems, json);
  const report = await runFixtures(loaded.ruleSet, fixtures.fixtures);
  if (json) {
    out(JSON.stringify({ ok: report.failed === 0, ...report, results: report.results.map((r) => ({ ...r, file: show(r.file) })) }, null, 2));
    return report.failed === 0 ? 0 : 1;
  }
  let file = '';
  for (const r of report.results) {
    if (r.file !== file) out(show((file = r.file)));
    out(`  ${r.passed ? 'PASS' : 'FAIL'}  ${r.name}`);
    for (const f of r.failures) out(`        ${f}`);
  }
  const total = report.passed + report.failed;
  out(
    `\n${total} case${total === 1 ? '' : 's'} in ${fixtures.fixtures.length} file${fixtures.fixtures.length === 1 ? '' : 's'}: ${report.passed} ` +
      `passed, ${report.failed} failed`,
  );
  return report.failed === 0 ? 0 : 1;
}

/** What `rules backtest` was given, for the replay (detection/backtest-cli.ts) that runs it. */
export interface BacktestArgs {
  from?: string;
  to?: string;
  step?: string;
  rules?: string;
  features?: string;
  json: boolean;
}

/**
 * `paysentinel rules validate|test|backtest`: the risk team's checks before a rule ships. A
 * backtest replays stored events through detection, so it comes from the caller (cli/main.ts):
 * rules/ does not depend on detection/.
 */
export const createRulesCommand = (deps: { backtest: (args: BacktestArgs) => Promise<number> }): Command => ({
  name: 'rules',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      'rules',
      argv,
      {
        json: { type: 'boolean' },
        rules: { type: 'string' },
        features: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        step: { type: 'string' },
      },
      true,
    );
    const [sub, path, ...extra] = positionals;
    if (extra.length) throw new PaysentinelError('USAGE', `unexpected argument "${extra[0]}".\nRun "paysentinel rules --help" for usage.`);
    const json = values.json === true;
    switch (sub) {
      case 'validate':
        if (values.rules !== undefined)
          throw new PaysentinelError('USAGE', 'validate takes the rules folder as PATH, not --rules.\nRun "paysentinel rules --help" for usage.');
        return validate(path, values.features, json);
      case 'test':
        return test(path, values.rules, values.features, json);
      case 'backtest': {
        if (path !== undefined)
          throw new PaysentinelError(
            'USAGE',
            `backtest takes no PATH (got "${path}"): give the candidate rules as --rules DIR.\nRun "paysentinel rules --help" for usage.`,
          );
        return deps.backtest({ from: values.from, to: values.to, step: values.step, rules: values.rules, features: values.features, json });
      }
      default:
        throw new PaysentinelError(
          'USAGE',
          `${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`}: use validate, test or backtest.\nRun "paysentinel rules ` +
            `--help" for usage.`,
        );
    }
  },
});
