import type { PolicyEntry } from './retry-policy.ts';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const decision = (e: { action: string; maxAttempts: number; peakMaxAttempts: number }) =>
  e.action === 'retry' ? `retry, max ${e.maxAttempts} attempts (peak ${e.peakMaxAttempts})` : e.action === 'manual_review' ? 'manual review' : 'no retry';

/** The current policy as a table, then each entry's evidence and reason. */
export function formatPolicy(entries: readonly PolicyEntry[]): string {
  if (entries.length === 0) return 'No retry policy yet: run "paysentinel analytics run retry-policy".';
  const head = entries[0]!;
  const header = ['channel', 'failure_code', 'action', 'max', 'backoff', 'peak hours (UTC)', 'peak max', 'peak backoff', 'P(retry ok) k=1 [95% CI], n'];
  const rows = entries.map((e) => {
    const k1 = e.evidence.steps.find((s) => s.k === 1);
    return [
      e.channel,
      e.failureCode,
      e.action,
      String(e.maxAttempts),
      `${e.backoffSeconds}s`,
      e.peakHours.length === 0 ? '-' : e.peakHours.join(','),
      String(e.peakMaxAttempts),
      `${e.peakBackoffSeconds}s`,
      k1 ? `${pct(k1.p)} [${pct(k1.ciLow)}, ${pct(k1.ciHigh)}], ${k1.retried}` : '-',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [
    `Retry policy, run ${head.runId ?? '?'} at ${head.computedAt?.toISOString() ?? '?'}, evidence from ${head.window?.from.toISOString() ?? '?'} to ` +
      `${head.window?.to.toISOString() ?? '?'}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    'Why:',
  ];
  for (const e of entries) {
    out.push(`  ${e.channel}:${e.failureCode}  ${e.reason}`);
    const steps = e.evidence.steps.map((s) => `k=${s.k}: ${s.succeeded}/${s.retried} = ${pct(s.p)} [${pct(s.ciLow)}, ${pct(s.ciHigh)}]`).join('; ');
    if (steps) out.push(`      evidence: ${e.evidence.failures} failures; retry after attempt ${steps}`);
  }
  return out.join('\n');
}

/** One line of `policy diff`. */
export interface PolicyChange {
  key: string;
  change: PolicyEntry['change'];
  before: string | null;
  after: string;
  backoff: { before: number | null; after: number };
  reason: string;
}

/** What the latest run changed against the run before it, and why. */
export function policyChanges(latest: readonly PolicyEntry[], previous: readonly PolicyEntry[]): PolicyChange[] {
  const prev = new Map(previous.map((p) => [`${p.channel}:${p.failureCode}`, p]));
  return latest.map((e) => {
    const key = `${e.channel}:${e.failureCode}`;
    const before = prev.get(key) ?? null;
    return {
      key,
      change: e.change,
      before: e.previous ? decision(e.previous) : null,
      after: decision(e),
      backoff: { before: before?.backoffSeconds ?? null, after: e.backoffSeconds },
      reason: e.reason,
    };
  });
}

export function formatPolicyDiff(changes: readonly PolicyChange[]): string {
  if (changes.length === 0) return 'No retry policy yet: run "paysentinel analytics run retry-policy".';
  const moved = changes.filter((c) => c.change !== 'unchanged');
  const out = [`The last run changed ${moved.length} of ${changes.length} entries.`];
  for (const c of moved) {
    out.push('', `${c.change === 'new' ? 'NEW' : 'CHANGED'} ${c.key}: ${c.before ?? '(none)'} -> ${c.after}`, `  why: ${c.reason}`);
  }
  const unchanged = changes.filter((c) => c.change === 'unchanged');
  if (unchanged.length > 0) {
    out.push('', 'Unchanged:');
    for (const c of unchanged) {
      const backoff = c.backoff.before !== null && c.backoff.before !== c.backoff.after ? ` (backoff ${c.backoff.before}s -> ${c.backoff.after}s)` : '';
      out.push(`  ${c.key}: ${c.after}${backoff}`);
    }
  }
  return out.join('\n');
}
