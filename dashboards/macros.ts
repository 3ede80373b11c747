/**
 * Expands the grafana-clickhouse-datasource macros and the Grafana template variables our panels
 * use, as Grafana and the plugin would for a concrete time range, so tests can run every panel's
 * SQL on a real ClickHouse. Only the macros the dashboards use are implemented; anything else
 * left starting with `$` is an error, so a panel cannot use a macro the tests do not expand.
 */
import type { QueryVariable } from './model.ts';

export interface ExpandOptions {
  from: Date;
  to: Date;
  /** What Grafana would pick for the panel width and range; at least 1. */
  intervalSeconds: number;
  /** Selected values per variable name; a variable not listed is set to All. */
  selected?: Record<string, readonly string[]>;
  /** The dashboard's variables (their All values). */
  variables?: readonly QueryVariable[];
}

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

/**
 * Grafana's `singlequote` format, exactly: each value quoted with embedded quotes
 * backslash-escaped (backslashes themselves are left alone, as Grafana does), comma-joined.
 */
const singleQuote = (values: readonly string[]): string => values.map((v) => `'${v.replace(/'/g, "\\'")}'`).join(',');

export function expandMacros(query: string, options: ExpandOptions): string {
  const from = `toDateTime(${seconds(options.from)})`;
  const to = `toDateTime(${seconds(options.to)})`;
  const interval = String(Math.max(1, Math.floor(options.intervalSeconds)));
  const variables = new Map((options.variables ?? []).map((v) => [v.name, v]));
  const out = query
    // The plugin's $__timeFilter(col): col >= toDateTime(from) AND col <= toDateTime(to), both in epoch seconds.
    .replace(/\$__timeFilter\(\s*([^)]+?)\s*\)/g, (_m, col: string) => `${col} >= ${from} AND ${col} <= ${to}`)
    .replace(/\$__fromTime(?![A-Za-z0-9_])/g, from)
    .replace(/\$__toTime(?![A-Za-z0-9_])/g, to)
    .replace(/\$__interval_s(?![A-Za-z0-9_])/g, interval)
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*):singlequote\}/g, (_m, name: string) => {
      const variable = variables.get(name);
      if (!variable) throw new Error(`Query uses variable ${name}, which the dashboard does not define`);
      const picked = options.selected?.[name];
      if (picked !== undefined) return singleQuote(picked);
      // Grafana inserts a custom All value verbatim, without the format.
      if (variable.allValue === undefined) throw new Error(`Variable ${name} has no custom all value`);
      return variable.allValue;
    });
  const left = /\$[{_A-Za-z][^\s,)]*/.exec(out);
  if (left) throw new Error(`Unexpanded macro or variable ${left[0]} in: ${query}`);
  return out;
}
