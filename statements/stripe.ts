import { buildLine, Columns, csvRecords, decodeUtf8, parseLocalTime, utcDays } from './parse.ts';
import type { ParsedLine, ParseOutcome } from './types.ts';

const REQUIRED = ['balance_transaction_id', 'created_utc', 'currency', 'gross', 'reporting_category'] as const;
/** The metadata column holding our order id (set `metadata.order_id` on the PaymentIntent and add the column to the report). */
export const STRIPE_ORDER_COLUMN = 'payment_metadata[order_id]';

/**
 * Stripe's balance report CSV (Balance change from activity, itemized: one balance transaction a
 * line; `gross`, `fee` in the currency's major units, currency lower case, `created_utc` as
 * 'YYYY-MM-DD hh:mm:ss' UTC). reporting_category `charge` is a payment, `refund` a refund (gross
 * negative in the report, positive here); other categories (fees, payouts, ...) move no money for
 * one order. The transaction id is `charge_id` (a refund's charge_id is the refunded charge), else
 * `source_id`; our order id comes from `payment_metadata[order_id]`.
 */
export function parseStripe(bytes: Uint8Array): ParseOutcome {
  const decoded = decodeUtf8(bytes, 'Stripe reports are UTF-8');
  if (!decoded.ok) return { ok: false, problem: decoded.problem, lines: [] };
  const { records, problem } = csvRecords(decoded.text);
  if (problem) return { ok: false, problem, lines: [] };
  const [header, ...rows] = records;
  if (!header)
    return { ok: false, problem: { line: 1, column: '', reason: `empty file: expected the report's header line (${REQUIRED.join(', ')}, ...)` }, lines: [] };
  const cols = new Columns(header.fields.map((f) => f.trim()));
  const missing = cols.missing(REQUIRED);
  if (missing.length > 0)
    return { ok: false, problem: { line: header.line, column: missing[0]!, reason: 'required column missing from the header' }, lines: [] };
  if (!cols.has('charge_id') && !cols.has('source_id'))
    return { ok: false, problem: { line: header.line, column: 'charge_id', reason: 'the report needs a charge_id or source_id column' }, lines: [] };
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
    const get = (c: string) => cols.get(rec.fields, c).trim();
    const category = get('reporting_category');
    if (category !== 'charge' && category !== 'refund')
      return { status: 'not_settled', line: rec.line, raw: rec.raw, reason: `reporting_category ${category || '(empty)'}` };
    const gross = get('gross');
    const negative = gross.startsWith('-');
    if ((category === 'refund') !== negative) {
      return {
        status: 'invalid',
        line: rec.line,
        raw: rec.raw,
        column: 'gross',
        reason: `a ${category}'s gross is ${category === 'refund' ? 'negative' : 'positive'} in Stripe reports, got ${gross}`,
      };
    }
    const chargeColumn = cols.has('charge_id') && get('charge_id') !== '' ? 'charge_id' : 'source_id';
    const at = get('created_utc');
    return buildLine(rec, {
      transactionId: [chargeColumn, get(chargeColumn)],
      orderId: [STRIPE_ORDER_COLUMN, get(STRIPE_ORDER_COLUMN)],
      type: category === 'charge' ? 'payment' : 'refund',
      amount: ['gross', negative ? gross.slice(1) : gross],
      currency: ['currency', get('currency')],
      occurredAtMs: ['created_utc', parseLocalTime(at, 0), at],
      fee: cols.has('fee') ? ['fee', get('fee').replace(/^-/, '')] : undefined,
      refundId: category === 'refund' ? get('source_id') : '',
      requireTransactionId: true,
    });
  });
  const period = utcDays(lines.flatMap((l) => (l.status === 'settled' ? [l.occurredAtMs] : [])));
  return { ok: true, statement: { format: 'stripe', lines, period } };
}
