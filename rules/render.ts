import type { EntityType, FactValue } from './schema.ts';

/**
 * `recommended_action` placeholders: `{fact}`, `{fact.key}` into an object fact, and an
 * optional format after a bar: `{ip_failure_rate_10m|percent}`, `{order_processing_age_24h|duration}`.
 */
export const placeholderFormats: readonly string[] = ['number', 'percent', 'duration', 'raw'];

export interface Placeholder {
  /** The text between the braces. */
  raw: string;
  name: string;
  /** Keys into an object fact, e.g. ['p_value']. */
  keys: string[];
  format: string | undefined;
  /** False when the braces hold something that is not a placeholder (a typo such as {ip attempts}). */
  valid: boolean;
}

const BRACES = /\{([^{}]*)\}/g;
const PLACEHOLDER = /^([a-z][a-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)(?:\|([a-z_]+))?$/;

/** Every `{...}` in a template, parsed. */
export function placeholders(template: string): Placeholder[] {
  return [...template.matchAll(BRACES)].map(([, raw = '']) => {
    const m = PLACEHOLDER.exec(raw.trim());
    if (!m) return { raw, name: '', keys: [], format: undefined, valid: false };
    return { raw, name: m[1]!, keys: m[2] ? m[2].slice(1).split('.') : [], format: m[3], valid: true };
  });
}

/** Human-friendly number: integers as they are, small values in scientific notation, others to 3 decimals. */
function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  if (n !== 0 && Math.abs(n) < 0.001) return n.toExponential(1);
  return String(Number(n.toFixed(3)));
}

/** Milliseconds as "1h 5m", "45m", "30s". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86_400),
    h = Math.floor((s % 86_400) / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = s % 60;
  const parts = [d && `${d}d`, h && `${h}h`, m && `${m}m`, !d && !h && sec && `${sec}s`].filter(Boolean);
  return parts.length ? parts.join(' ') : '0s';
}

function formatValue(value: unknown, format: string | undefined): string {
  if (value === undefined || value === null) return 'unknown';
  if (typeof value !== 'number') return typeof value === 'object' ? JSON.stringify(value) : String(value);
  switch (format) {
    case 'percent':
      return `${Number((value * 100).toFixed(1))}%`;
    case 'duration':
      return formatDuration(value);
    case 'raw':
      return String(value);
    default:
      return formatNumber(value);
  }
}

/** What a template is rendered with. */
export interface RenderContext {
  entityType: EntityType;
  entityId: string;
  facts: Readonly<Record<string, FactValue | undefined>>;
}

/** Fills the placeholders of a recommended action; a missing value renders as "unknown". */
export function renderTemplate(template: string, ctx: RenderContext): string {
  return template.replace(BRACES, (whole, raw: string) => {
    const m = PLACEHOLDER.exec(raw.trim());
    if (!m) return whole;
    const [, name = '', path, format] = m;
    let value: unknown = name === 'entity_id' ? ctx.entityId : name === 'entity_type' ? ctx.entityType : ctx.facts[name];
    for (const key of path ? path.slice(1).split('.') : []) {
      value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
    }
    return formatValue(value, format);
  });
}
