import { Ajv, type ErrorObject } from 'ajv';
import { isUtf8 } from 'node:buffer';
import { isIP } from 'node:net';
import { PaymentEventSchema, contractFields, type PaymentEvent } from './schema.ts';

/** ClickHouse DateTime covers 1970-01-01 .. 2105-12-31; outside it a value would be silently clamped. */
const MAX_EPOCH_MS = Date.UTC(2106, 0, 1) - 1;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const daysIn = (year: number, month: number): number => (month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : DAYS[month - 1]!);

/** The `count` ASCII digits at `at` as a number, or -1 when one of them is not a digit. */
function digitsAt(text: string, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const d = text.charCodeAt(i) - 48;
    if (!(d >= 0 && d <= 9)) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** The last text parseRfc3339 was given and its result: validation and the row ask for the same timestamp. */
let lastText = '';
let lastMs: number | null = null;

/**
 * Parses an RFC 3339 timestamp (`YYYY-MM-DD[Tt ]hh:mm:ss[.1-9 digits](Z|z|±hh:mm)`) to epoch
 * milliseconds, or returns null when it is not one or falls outside ClickHouse's DateTime. Read
 * character by character: a regular expression cost about 1 µs per event on ingest's path
 * (docs/benchmarks.md); the unit tests hold it to the pattern it replaced.
 */
export function parseRfc3339(value: string): number | null {
  if (value === lastText) return lastMs;
  const ms = parseTimestamp(value);
  lastText = value;
  lastMs = ms;
  return ms;
}

function parseTimestamp(t: string): number | null {
  const length = t.length;
  if (length < 20 || length > 35) return null;
  const year = digitsAt(t, 0, 4);
  const month = digitsAt(t, 5, 2);
  const day = digitsAt(t, 8, 2);
  const hour = digitsAt(t, 11, 2);
  const minute = digitsAt(t, 14, 2);
  const second = digitsAt(t, 17, 2);
  const sep = t.charCodeAt(10);
  // Before 1969 no offset brings a time past 1970 (and Date.UTC would read years 0-99 as 1900-1999).
  if (year < 1969 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return null;
  if (t.charCodeAt(4) !== 45 || t.charCodeAt(7) !== 45 || t.charCodeAt(13) !== 58 || t.charCodeAt(16) !== 58) return null; // - - : :
  if (sep !== 84 && sep !== 116 && sep !== 32) return null; // T t space
  let at = 19;
  let ms = 0;
  if (t.charCodeAt(at) === 46 /* . */) {
    const from = ++at;
    while (at < length && at - from < 10) {
      const d = t.charCodeAt(at) - 48;
      if (!(d >= 0 && d <= 9)) break;
      if (at - from < 3) ms += d * (at === from ? 100 : at === from + 1 ? 10 : 1);
      at++;
    }
    if (at === from || at - from > 9) return null;
  }
  let offsetMin = 0;
  const zone = t.charCodeAt(at);
  if (zone === 90 || zone === 122) {
    if (at + 1 !== length) return null; // Z z
  } else if (zone === 43 || zone === 45) {
    const oh = digitsAt(t, at + 1, 2);
    const om = digitsAt(t, at + 4, 2);
    if (at + 6 !== length || oh < 0 || om < 0 || t.charCodeAt(at + 3) !== 58) return null;
    if (oh > 23 || om > 59) return null;
    offsetMin = (zone === 45 ? -1 : 1) * (oh * 60 + om);
  } else return null;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  if (day > daysIn(year, month)) return null;
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
