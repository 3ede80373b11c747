/**
 * Durations as rules write them (`cooldown`, `olderThan`) and as every command takes them
 * (`--since 2h`, `--duration 90s`): 90s, 5m, 1h, 1500ms, 7d or a plain number of seconds.
 * Milliseconds, or null when `raw` is not one.
 */
export function parseDuration(raw: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
