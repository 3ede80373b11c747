import { parse as parseCsv, CsvError } from 'csv-parse/sync';
import iconv from 'iconv-lite';
import { currencyExponent, parseDecimal, rescale, toMinorUnits, type Decimal } from './money.ts';
import type { FileProblem, InvalidLine, SettledLine } from './types.ts';

/** Ids longer than this are refused, as in the event contract. */
export const MAX_ID_LENGTH = 128;

export type Decoded = { ok: true; text: string } | { ok: false; problem: FileProblem };

// The 1-based line holding byte `offset`.
const lineAt = (bytes: Uint8Array, offset: number): number => {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i++) if (bytes[i] === 0x0a) line++;
  return line;
};

/** Strict UTF-8 (a BOM is dropped): a byte sequence that is not UTF-8 refuses the file, naming its line. */
export function decodeUtf8(bytes: Uint8Array, hint: string): Decoded {
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    // Find the first line that does not decode, so the message points at it.
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i === bytes.length || bytes[i] === 0x0a) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, i));
        } catch {
          return { ok: false, problem: { line: lineAt(bytes, start), column: '', reason: `not valid UTF-8 (${hint})` } };
        }
        start = i + 1;
      }
    }
    return { ok: false, problem: { line: 1, column: '', reason: `not valid UTF-8 (${hint})` } };
  }
}

/** GBK as Alipay writes it. iconv-lite replaces undecodable bytes with U+FFFD, which refuses the file. */
export function decodeGbk(bytes: Uint8Array): Decoded {
  const text = iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'gbk');
  const bad = text.indexOf('\uFFFD');
  if (bad >= 0) {
    const line = text.slice(0, bad).split('\n').length;
    return { ok: false, problem: { line, column: '', reason: 'not valid GBK (Alipay downloads are GBK-encoded)' } };
  }
  return { ok: true, text };
}

/** One CSV record: its fields, the line it starts on, and its text as in the file. */
export interface CsvRecord {
  fields: string[];
  line: number;
  raw: string;
}

/**
 * Splits text into CSV records with csv-parse, keeping each record's line and raw text. Rows may
 * have different lengths (provider files mix header, detail and summary rows). A quote left open
 * (a truncated file) is a problem naming the line it starts on.
 */
export function csvRecords(text: string): { records: CsvRecord[]; problem?: FileProblem } {
  try {
    // No `info` (it costs an object per record, a third of the parse at a million lines): each
    // record's line is counted from its raw text, which holds its inner line breaks.
    const rows = parseCsv(text, { bom: true, raw: true, relax_column_count: true, max_record_size: 1 << 20 }) as unknown as { record: string[]; raw: string }[];
    const records: CsvRecord[] = [];
    let line = 1;
    for (const r of rows) {
      const raw = r.raw.replace(/[\r\n]+$/, '');
      const start = line;
      let breaks = 0;
      for (let i = raw.indexOf('\n'); i >= 0; i = raw.indexOf('\n', i + 1)) breaks++;
      line += breaks + 1;
      // An empty line is a record of one empty field: skipped, but counted.
      if (r.record.length === 1 && r.record[0] === '' && raw.trim() === '') continue;
      records.push({ fields: r.record, raw, line: start });
    }
    return { records };
  } catch (err) {
    if (err instanceof CsvError) {
      const line = Number((err as unknown as { lines?: number }).lines ?? 0) || 1;
      return {
        records: [],
        problem: { line, column: '', reason: `not readable as CSV: ${err.message.replace(/^Invalid Record Length: |^Quote Not Closed: /, '')}` },
      };
    }
    throw err;
  }
}

/** Field access by column name for one record. */
export class Columns {
  private readonly index = new Map<string, number>();
  constructor(readonly names: readonly string[]) {
    names.forEach((n, i) => {
      if (!this.index.has(n)) this.index.set(n, i);
    });
  }
  has(name: string): boolean {
    return this.index.has(name);
  }
  /** The missing ones among `required`. */
  missing(required: readonly string[]): string[] {
    return required.filter((n) => !this.index.has(n));
  }
  get(fields: readonly string[], name: string): string {
    const i = this.index.get(name);
    return i === undefined ? '' : (fields[i] ?? '');
  }
}

/** What a parser hands over to build a settled line; each value names the column it came from. */
export interface LineInput {
  transactionId: [column: string, value: string];
  orderId: [column: string, value: string];
  type: 'payment' | 'refund';
  amount: [column: string, value: string];
  currency: [column: string, value: string];
  occurredAtMs: [column: string, value: number | null, text: string];
  fee?: [column: string, value: string];
  refundId?: string;
  /** At least one of transaction id and order id is needed to match; the format says which it requires. */
  requireTransactionId?: boolean;
  requireOrderId?: boolean;
}

/** Validates one line's values into a SettledLine, or the first problem as an InvalidLine. */
export function buildLine(rec: CsvRecord, input: LineInput): SettledLine | InvalidLine {
  const invalid = (column: string, reason: string): InvalidLine => ({ status: 'invalid', line: rec.line, raw: rec.raw, column, reason });
  const [txCol, tx] = input.transactionId;
  const [orderCol, order] = input.orderId;
  if (input.requireTransactionId && tx === '') return invalid(txCol, 'is empty');
  if (input.requireOrderId && order === '') return invalid(orderCol, 'is empty');
  if (tx === '' && order === '') return invalid(txCol, `is empty and so is ${JSON.stringify(orderCol)}: the line cannot be matched`);
  if (tx.length > MAX_ID_LENGTH) return invalid(txCol, `is longer than ${MAX_ID_LENGTH} characters`);
  if (order.length > MAX_ID_LENGTH) return invalid(orderCol, `is longer than ${MAX_ID_LENGTH} characters`);
  const [curCol, currencyText] = input.currency;
  const currency = currencyText.toUpperCase();
  if (!/^[A-Z]{3}$/.test(currency) || currencyExponent(currency) === undefined)
    return invalid(curCol, `unknown currency ${JSON.stringify(currencyText)} (expected an ISO 4217 code such as CNY, USD, JPY)`);
  const [amountCol, amountText] = input.amount;
  const amount = toMinorUnits(amountText, currency);
  if (!amount.ok) return invalid(amountCol, amount.reason);
  if (amount.value <= 0) return invalid(amountCol, `${amountText} is not a positive amount`);
  const [timeCol, occurredAtMs, timeText] = input.occurredAtMs;
  if (occurredAtMs === null) return invalid(timeCol, `${JSON.stringify(timeText)} is not a valid time`);
  let fee: Decimal | null = null;
  if (input.fee && input.fee[1] !== '') {
    const d = parseDecimal(input.fee[1]);
    if (!d.ok) return invalid(input.fee[0], d.reason);
    // Fees may be finer than the currency (WeChat Pay reports 5 decimals); kept exactly, at least at the currency's scale.
    fee = rescale(d.value, Math.max(d.value.scale, currencyExponent(currency)!))!;
    if (fee.units > BigInt(Number.MAX_SAFE_INTEGER) || fee.units < -BigInt(Number.MAX_SAFE_INTEGER))
      return invalid(input.fee[0], `${input.fee[1]} is out of range`);
  }
  return {
    status: 'settled',
    line: rec.line,
    raw: rec.raw,
    transactionId: tx,
    orderId: order,
    type: input.type,
    amountMinor: amount.value,
    currency,
    occurredAtMs,
    fee,
    refundId: input.refundId ?? '',
  };
}

const BEIJING_OFFSET_MS = 8 * 3_600_000;
const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/;

/** 'YYYY-MM-DD hh:mm:ss' at a fixed UTC offset -> epoch ms; null when not such a time. */
export function parseLocalTime(text: string, offsetMs: number): number | null {
  const m = LOCAL_TIME.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  // Refuses 2026-02-30 and 24:00:00, which Date.UTC would roll over.
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi)
    return null;
  return ms - offsetMs;
}

/** Beijing time (UTC+8, no daylight saving), as WeChat Pay and Alipay write it. */
export const parseBeijingTime = (text: string): number | null => parseLocalTime(text, BEIJING_OFFSET_MS);

/** The Beijing day [00:00, 24:00) holding `ms`, as a period. */
export function beijingDay(ms: number): { fromMs: number; toMs: number } {
  const fromMs = Math.floor((ms + BEIJING_OFFSET_MS) / 86_400_000) * 86_400_000 - BEIJING_OFFSET_MS;
  return { fromMs, toMs: fromMs + 86_400_000 };
}

/** The UTC days spanned by `times` (at least one). */
export function utcDays(times: readonly number[]): { fromMs: number; toMs: number } | undefined {
  if (times.length === 0) return undefined;
  let min = Infinity;
  let max = -Infinity;
  for (const t of times) {
    if (t < min) min = t;
    if (t > max) max = t;
  }
  const fromMs = Math.floor(min / 86_400_000) * 86_400_000;
  return { fromMs, toMs: Math.floor(max / 86_400_000) * 86_400_000 + 86_400_000 };
}
