import { Ajv, type ErrorObject } from 'ajv';
import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { PaymentEventSchema, contractFields, type PaymentEvent } from './schema.ts';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;
/** ClickHouse DateTime covers 1970-01-01 .. 2105-12-31; outside it a value would be silently clamped. */
const MAX_EPOCH_MS = Date.UTC(2106, 0, 1) - 1;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const daysIn = (year: number, month: number): number => (month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : DAYS[month - 1]!);

/** Parses an RFC 3339 timestamp to epoch milliseconds, or returns null when it is not one. */
export function parseRfc3339(value: string): number | null {
  const m = RFC3339.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const year = Number(y),
    month = Number(mo),
    day = Number(d);
  const hour = Number(h),
    minute = Number(mi),
    second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  if (day > daysIn(year, month)) return null;
  let offsetMin = 0;
  if (sign) {
    const ohn = Number(oh),
      omn = Number(om);
    if (ohn > 23 || omn > 59) return null;
    offsetMin = (sign === '-' ? -1 : 1) * (ohn * 60 + omn);
  }
  const ms = frac ? Math.floor(Number(frac.slice(1).padEnd(3, '0').slice(0, 3))) : 0;
  const epoch = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
  if (epoch < 0 || epoch > MAX_EPOCH_MS) return null;
  return epoch;
}

const ajv = new Ajv({ allErrors: false, strict: false });
ajv.addFormat('rfc3339', { type: 'string', validate: (v: string) => parseRfc3339(v) !== null });
ajv.addFormat('ip', { type: 'string', validate: (v: string) => isIP(v) !== 0 });
const check = ajv.compile(PaymentEventSchema);

/** A valid event with what ingest derives from it. */
export interface ValidEvent {
  event: PaymentEvent;
  occurredAtMs: number;
  /** Fields outside the contract, kept verbatim (JSON), or '' when there are none. */
  extra: string;
}

export type ValidationResult = { ok: true; value: ValidEvent } | { ok: false; reason: string };

function describe(error: ErrorObject): string {
  const field = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : '';
  switch (error.keyword) {
    case 'required':
      return `missing required field "${(error.params as { missingProperty: string }).missingProperty}"`;
    case 'format':
      return error.params.format === 'rfc3339'
        ? `field "${field}" is not an RFC 3339 timestamp with offset or Z between 1970 and 2105`
        : `field "${field}" is not a valid IPv4 or IPv6 address`;
    case 'enum':
      return `field "${field}" must be one of: ${(error.params as { allowedValues: string[] }).allowedValues.join(', ')}`;
    default:
      return field ? `field "${field}" ${error.message}` : `event ${error.message}`;
  }
}

/**
 * The first contract field holding an unpaired UTF-16 surrogate (from a JSON escape such as
 * `\ud800`: raw UTF-8 cannot encode one), or null. Such a string has no UTF-8 form: stored, it
 * would become U+FFFD and two different ids could become one, so the event is refused instead.
 */
function unpairedSurrogateField(event: object): string | null {
  for (const key of contractFields) {
    const v = (event as Record<string, unknown>)[key];
    // isWellFormed is ES2024 (Node 20 has it; the TypeScript target here is ES2022).
    if (typeof v === 'string' && !(v as unknown as { isWellFormed(): boolean }).isWellFormed()) return key;
  }
  return null;
}

/** Validates an already parsed JSON value against the contract. */
export function validateEvent(value: unknown): ValidationResult {
  return validateParsed(value, true);
}

function validateParsed(value: unknown, mayHaveEscapes: boolean): ValidationResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: 'not a JSON object' };
  }
  if (!check(value)) {
    const errors = check.errors ?? [];
    // The required error of a conditional is more useful than the "must match then" wrapper.
    const first = errors.find((e) => e.keyword !== 'if') ?? errors[0];
    return { ok: false, reason: first ? describe(first) : 'does not match the contract' };
  }
  const event = value as PaymentEvent;
  if (mayHaveEscapes) {
    const field = unpairedSurrogateField(event);
    if (field !== null) return { ok: false, reason: `field "${field}" is not valid Unicode (an unpaired surrogate escape)` };
  }
  let extra = '';
  for (const key in event) {
    if (!contractFields.has(key)) {
      const extras: Record<string, unknown> = {};
      for (const k in event) if (!contractFields.has(k)) extras[k] = (event as Record<string, unknown>)[k];
      extra = JSON.stringify(extras);
      break;
    }
  }
  return { ok: true, value: { event, occurredAtMs: parseRfc3339(event.occurred_at)!, extra } };
}

const BACKSLASH_U = Buffer.from('\\u');

/** Decodes one Kafka message value: size, UTF-8, JSON, then the contract. */
export function decodeEvent(raw: Buffer | null, maxBytes: number): ValidationResult {
  if (raw === null || raw.length === 0) return { ok: false, reason: 'empty message' };
  if (raw.length > maxBytes) return { ok: false, reason: `message is ${raw.length} bytes, over the ${maxBytes}-byte limit` };
  if (!isUtf8(raw)) return { ok: false, reason: 'message is not valid UTF-8' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `not valid JSON: ${(err as Error).message}` };
  }
  // Only a \u escape can produce an unpaired surrogate: most messages have none to look for.
  return validateParsed(parsed, raw.includes(BACKSLASH_U));
}
