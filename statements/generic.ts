import { parseRfc3339 } from '../contract/validate.ts';
import { buildLine, Columns, csvRecords, decodeUtf8, utcDays } from './parse.ts';
import type { ParsedLine, ParseOutcome } from './types.ts';

/** The generic format's columns; `fee` may be left out. */
export const GENERIC_COLUMNS = ['transaction_id', 'order_id', 'type', 'amount', 'currency', 'occurred_at', 'fee'] as const;
const REQUIRED = GENERIC_COLUMNS.filter((c) => c !== 'fee');

/**
 * The generic format: UTF-8 CSV with a header naming the columns (any order), one line per settled
 * payment or refund; amounts positive in major units; occurred_at RFC 3339. The period comes from
 * the caller (`--period`), else the UTC days its lines span.
 */
export function parseGeneric(bytes: Uint8Array): ParseOutcome {
  const decoded = decodeUtf8(bytes, 'the generic format is UTF-8');
  if (!decoded.ok) return { ok: false, problem: decoded.problem, lines: [] };
  const { records, problem } = csvRecords(decoded.text);
  if (problem) return { ok: false, problem, lines: [] };
  const [header, ...rows] = records;
  if (!header) return { ok: false, problem: { line: 1, column: '', reason: `empty file: expected a header line with ${REQUIRED.join(', ')}` }, lines: [] };
  const cols = new Columns(header.fields.map((f) => f.trim()));
  const missing = cols.missing(REQUIRED);
  if (missing.length > 0)
    return {
      ok: false,
      problem: { line: header.line, column: missing[0]!, reason: `required column missing from the header (expected ${REQUIRED.join(', ')}[, fee])` },
      lines: [],
    };
  const lines: ParsedLine[] = rows.map((rec) => {
    if (rec.fields.length !== header.fields.length) {
      return {
        status: 'invalid',
        line: rec.line,
        raw: rec.raw,
        column: '',
        reason: `has ${rec.fields.length} fields, the header has ${header.fields.length} (a truncated or malformed line)`,
      };
    }
    const get = (c: string) => cols.get(rec.fields, c);
    const type = get('type');
    if (type !== 'payment' && type !== 'refund')
      return { status: 'invalid', line: rec.line, raw: rec.raw, column: 'type', reason: `${JSON.stringify(type)} is not payment or refund` };
    const at = get('occurred_at');
    return buildLine(rec, {
      transactionId: ['transaction_id', get('transaction_id')],
      orderId: ['order_id', get('order_id')],
      type,
      amount: ['amount', get('amount')],
      currency: ['currency', get('currency')],
      occurredAtMs: ['occurred_at', parseRfc3339(at), at],
      fee: cols.has('fee') ? ['fee', get('fee')] : undefined,
    });
  });
  const period = utcDays(lines.flatMap((l) => (l.status === 'settled' ? [l.occurredAtMs] : [])));
  return { ok: true, statement: { format: 'generic', lines, period } };
}
