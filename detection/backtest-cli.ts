import { relative } from 'node:path';
import { parseDuration } from '../rules/duration.ts';
import { loadConfig } from '../config/index.ts';
import { recordedCases, replay, type ReplayResult } from './backtest.ts';
import { PaysentinelError } from '../errors/index.ts';
import { parseTime } from '../analytics/format.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { defaultRulesPath, formatProblem, loadRuleSet, type RuleSet } from '../rules/index.ts';
import type { BacktestArgs } from '../rules/cli.ts';

const usage = (message: string): never => {
  throw new PaysentinelError('USAGE', `${message}\nRun "paysentinel rules --help" for usage.`);
};

/** How many sample entities per rule the report shows. */
const SAMPLES = 5;

export interface BacktestRuleRow {
  rule_id: string;
  candidate: number;
  /** null when the candidate is the live rule set (one replay). */
  live: number | null;
  recorded: number;
  samples: { entity_type: string; entity_id: string; opened_at: string }[];
}

/** Per-rule comparison of a candidate replay with the live rules' replay and what live detection recorded. */
export function compareReplays(candidate: ReplayResult, live: ReplayResult | null, recorded: ReadonlyMap<string, number>): BacktestRuleRow[] {
  const ids = new Set([...candidate.opened.keys(), ...(live?.opened.keys() ?? []), ...recorded.keys()]);
  return [...ids].sort().map((id) => ({
    rule_id: id,
    candidate: candidate.opened.get(id)?.length ?? 0,
    live: live ? (live.opened.get(id)?.length ?? 0) : null,
    recorded: recorded.get(id) ?? 0,
    samples: (candidate.opened.get(id) ?? []).slice(0, SAMPLES).map((c) => ({ entity_type: c.entity_type, entity_id: c.entity_id, opened_at: c.opened_at })),
  }));
}

/** A progress line on stderr: redrawn in place on a terminal, every 10% otherwise. */
function progressReporter(fromMs: number, toMs: number) {
  const tty = process.stderr.isTTY === true;
  let lastTenth = -1;
  const started = Date.now();
  return (label: string, atMs: number) => {
    const share = toMs > fromMs ? Math.min(1, (atMs - fromMs) / (toMs - fromMs)) : 1;
    const at = new Date(atMs).toISOString().slice(0, 19) + 'Z';
    const elapsed = ((Date.now() - started) / 1000).toFixed(0);
    if (tty) {
      const bar = '#'.repeat(Math.round(share * 30)).padEnd(30, '.');
      process.stderr.write(`\r${label} [${bar}] ${(share * 100).toFixed(0).padStart(3)}%  ${at}  ${elapsed}s `);
      if (share >= 1) process.stderr.write('\n');
    } else if (Math.floor(share * 10) > lastTenth) {
      lastTenth = Math.floor(share * 10);
      process.stderr.write(`${label}: ${(share * 100).toFixed(0)}% (replayed up to ${at}, ${elapsed}s)\n`);
    }
  };
}

async function loadOrFail(path: string | undefined, features: string | undefined, what: string): Promise<RuleSet> {
  const result = await loadRuleSet({ rulesPath: path, featuresPath: features });
  if (!result.ok) {
    throw new PaysentinelError('RULES_INVALID', `the ${what} rules are invalid:\n${result.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
  }
  return result.ruleSet;
}

/** `paysentinel rules backtest`. Returns the exit code. */
export async function backtestCommand(args: BacktestArgs): Promise<number> {
  const now = new Date();
  if (args.from === undefined || args.to === undefined) usage('backtest needs --from and --to.');
  const from =
    parseTime(args.from!, now) ??
    usage(`--from ${JSON.stringify(args.from)} is not a time: use RFC 3339 with a zone (2026-11-25T10:00:00Z), a date, now or now-1h.`);
  const to =
    parseTime(args.to!, now) ?? usage(`--to ${JSON.stringify(args.to)} is not a time: use RFC 3339 with a zone (2026-11-25T10:00:00Z), a date, now or now-1h.`);
  // Nothing is stored after now: a later --to only adds empty ticks.
  if (to.getTime() > now.getTime()) to.setTime(now.getTime());
  if (to.getTime() <= from.getTime()) usage('--to must be after --from (and --from before now).');
  const stepMs =
    args.step === undefined ? 1000 : (parseDuration(args.step) ?? usage(`--step ${JSON.stringify(args.step)} is not a duration such as 1s or 5s.`));
  if (stepMs < 1000 || stepMs % 1000 !== 0) usage('--step must be whole seconds, at least 1s (rows carry their write time to the second).');
  const ticks = Math.ceil((to.getTime() - from.getTime()) / stepMs);
  if (ticks > 2_000_000) usage(`--from..--to is ${ticks} ticks of ${stepMs / 1000}s: split the range or use a coarser --step.`);

  const config = loadConfig();
  const livePath = config.rulesPath || defaultRulesPath;
  const candidatePath = args.rules ?? livePath;
  const live = await loadOrFail(livePath, config.featuresPath || undefined, 'live');
  const candidateFeatures = args.features || config.featuresPath || undefined;
  const candidate =
    candidatePath === livePath && candidateFeatures === (config.featuresPath || undefined)
      ? live
      : await loadOrFail(candidatePath, candidateFeatures, 'candidate');
  const same = candidate === live || candidate.version === live.version;

  const clickhouse = createClickHouse(config, { requestTimeoutMs: 120_000 });
  const http = createClickHouseHttp(config, { timeoutMs: 120_000 });
  const deps = { clickhouse, http, database: config.clickhouseDatabase };
  const progress = progressReporter(from.getTime(), to.getTime());
  const started = Date.now();
  try {
    const options = { fromMs: from.getTime(), toMs: to.getTime(), stepMs };
    const [candidateRun, liveRun] = await Promise.all([
      replay(deps, candidate, { ...options, onProgress: (at) => progress(same ? 'backtest' : 'backtest (candidate and live)', at) }),
      same ? Promise.resolve(null) : replay(deps, live, options),
    ]);
    const recorded = await recordedCases(deps, from.getTime(), to.getTime());
    const rows = compareReplays(candidateRun, liveRun, recorded);
    const show = (p: string) => (p === defaultRulesPath ? 'bundled rules' : relative(process.cwd(), p) || '.');
    const report = {
      from: from.toISOString(),
      to: to.toISOString(),
      step_ms: stepMs,
      ticks: candidateRun.ticks,
      elapsed_ms: Date.now() - started,
      candidate: { rules: show(candidatePath), version: candidate.version },
      live: { rules: show(livePath), version: live.version },
      rules: rows,
    };
    if (args.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return 0;
    }
    const out = (t: string) => process.stdout.write(t + '\n');
    out(
      `Backtest ${report.from} .. ${report.to}: ${report.ticks} ticks of ${stepMs / 1000}s in ${(report.elapsed_ms / 1000).toFixed(1)}s. Nothing was ` +
        `stored or published.`,
    );
    out(
      same
        ? `Rules: ${report.candidate.rules} (version ${candidate.version}), the live rules.`
        : `Candidate: ${report.candidate.rules} (version ${candidate.version}); live: ${report.live.rules} (version ${live.version}).`,
    );
    out('');
    const head = same ? ['rule', 'cases', 'recorded'] : ['rule', 'candidate', 'live', 'change', 'recorded'];
    const lines = rows.map((r) =>
      same
        ? [r.rule_id, String(r.candidate), String(r.recorded)]
        : [
            r.rule_id,
            String(r.candidate),
            String(r.live),
            r.candidate === r.live ? '=' : (r.candidate > r.live! ? '+' : '') + String(r.candidate - r.live!),
            String(r.recorded),
          ],
    );
    const total = (pick: (r: BacktestRuleRow) => number) => String(rows.reduce((s, r) => s + pick(r), 0));
    lines.push(
      same
        ? ['total', total((r) => r.candidate), total((r) => r.recorded)]
        : ['total', total((r) => r.candidate), total((r) => r.live ?? 0), '', total((r) => r.recorded)],
    );
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    out(fmt(head));
    for (const l of lines) out(fmt(l));
    out('');
    out(
      '"recorded" = cases live detection opened in this range. Replays start from the cases as they stood at --from (support\'s acknowledgements and ' +
        'resolutions after it are not replayed).',
    );
    const withSamples = rows.filter((r) => r.samples.length > 0);
    if (withSamples.length) {
      out('');
      out(`Sample entities (${same ? '' : 'candidate, '}first ${SAMPLES} per rule):`);
      for (const r of withSamples) out(`  ${r.rule_id}: ${r.samples.map((c) => `${c.entity_type} ${c.entity_id} at ${c.opened_at}`).join('; ')}`);
    }
    return 0;
  } finally {
    await clickhouse.close();
  }
}
