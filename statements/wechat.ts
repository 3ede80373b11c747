import { beijingDay, buildLine, Columns, csvRecords, decodeUtf8, parseBeijingTime, type CsvRecord } from './parse.ts';
import { decimalsEqual, formatDecimal, parseDecimal, sumDecimals, type Decimal } from './money.ts';
import type { FileProblem, ParsedLine, ParseOutcome, Period } from './types.ts';

const DETAIL_REQUIRED = ['交易时间', '微信订单号', '商户订单号', '交易状态', '货币种类', '应结订单金额', '退款金额', '退款状态', '手续费'] as const;
const SUMMARY_HEADER_FIRST = '总交易单数';

// Fields are written as `value so spreadsheets keep long ids as text.
const unquote = (f: string): string => (f.startsWith('`') ? f.slice(1) : f).trim();

/**
 * WeChat Pay's daily trade bill (交易账单, bill_type ALL/SUCCESS/REFUND), UTF-8, in four parts:
 * the detail header, the details, the summary header (总交易单数,...) and one summary row. Every
 * detail and summary field starts with a backtick. A SUCCESS line is a payment of 订单金额 (else
 * 应结订单金额); a REFUND line whose 退款状态 is SUCCESS is a refund of 申请退款金额 (else 退款金额).
 * 微信订单号 is the transaction id and 商户订单号 our order id. Times are Beijing time and the bill
 * covers one Beijing day, which is its period. The summary must agree with the details.
 */
export function parseWechat(bytes: Uint8Array): ParseOutcome {
  const decoded = decodeUtf8(bytes, 'WeChat Pay bills are UTF-8');
  if (!decoded.ok) return { ok: false, problem: decoded.problem, lines: [] };
  const { records, problem } = csvRecords(decoded.text);
  if (problem) return { ok: false, problem, lines: [] };
  const fail = (p: FileProblem, lines: ParsedLine[] = []): ParseOutcome => ({ ok: false, problem: p, lines });
  const header = records[0];
  if (!header || header.fields[0]?.trim() !== '交易时间')
    return fail({
      line: header?.line ?? 1,
      column: '',
      reason: 'not a WeChat Pay trade bill: the first line must be the detail header starting with 交易时间',
    });
  const cols = new Columns(header.fields.map((f) => f.trim()));
  const missing = cols.missing(DETAIL_REQUIRED);
  if (missing.length > 0) return fail({ line: header.line, column: missing[0]!, reason: 'required column missing from the detail header' });
  const summaryAt = records.findIndex((r, i) => i > 0 && r.fields[0]?.trim() === SUMMARY_HEADER_FIRST);
  const details = records.slice(1, summaryAt < 0 ? undefined : summaryAt);
  const lines = details.map((rec) => detailLine(rec, cols, header.fields.length));
  if (summaryAt < 0 || !records[summaryAt + 1]) {
    const last = records[records.length - 1];
    return fail({ line: (last?.line ?? 0) + 1, column: '', reason: 'the file ends before the summary (总交易单数 ...): truncated' }, lines);
  }
  if (records.length > summaryAt + 2) return fail({ line: records[summaryAt + 2]!.line, column: '', reason: 'unexpected line after the summary' }, lines);
  const summaryProblem = checkSummary(records[summaryAt]!, records[summaryAt + 1]!, details, cols);
  if (summaryProblem) return fail(summaryProblem, lines);
  let period: Period | undefined;
  const times = details.flatMap((rec) => {
    const t = parseBeijingTime(unquote(cols.get(rec.fields, '交易时间')));
    return t === null ? [] : [t];
  });
  if (times.length > 0) period = beijingDay(Math.min(...times));
  return { ok: true, statement: { format: 'wechat', lines, period } };
}

function detailLine(rec: CsvRecord, cols: Columns, width: number): ParsedLine {
  if (rec.fields.length !== width) {
    return {
      status: 'invalid',
      line: rec.line,
      raw: rec.raw,
      column: '',
      reason: `has ${rec.fields.length} fields, the detail header has ${width} (a truncated or malformed line)`,
    };
  }
  const notTicked = rec.fields.findIndex((f) => !f.startsWith('`'));
  if (notTicked >= 0)
    return {
      status: 'invalid',
      line: rec.line,
      raw: rec.raw,
      column: cols.names[notTicked] ?? '',
      reason: 'does not start with a backtick as every WeChat Pay bill field does',
    };
  const get = (c: string) => unquote(cols.get(rec.fields, c));
  const state = get('交易状态');
  const at = get('交易时间');
  const common = {
    transactionId: ['微信订单号', get('微信订单号')] as [string, string],
    orderId: ['商户订单号', get('商户订单号')] as [string, string],
    currency: ['货币种类', get('货币种类')] as [string, string],
    occurredAtMs: ['交易时间', parseBeijingTime(at), at] as [string, number | null, string],
    fee: ['手续费', get('手续费').replace(/^-/, '')] as [string, string],
    requireTransactionId: true,
  };
  if (state === 'SUCCESS') {
    const column = cols.has('订单金额') ? '订单金额' : '应结订单金额';
    return buildLine(rec, { ...common, type: 'payment', amount: [column, get(column)] });
  }
  if (state === 'REFUND') {
    const refundState = get('退款状态');
    if (refundState !== 'SUCCESS') return { status: 'not_settled', line: rec.line, raw: rec.raw, reason: `refund with 退款状态 ${refundState || '(empty)'}` };
    const column = cols.has('申请退款金额') && get('申请退款金额') !== '' ? '申请退款金额' : '退款金额';
    return buildLine(rec, { ...common, type: 'refund', amount: [column, get(column)], refundId: get('微信退款单号') });
  }
  if (state === 'REVOKED' || state === 'CLOSED' || state === 'NOTPAY' || state === 'PAYERROR' || state === 'USERPAYING') {
    return { status: 'not_settled', line: rec.line, raw: rec.raw, reason: `交易状态 ${state}` };
  }
  return {
    status: 'invalid',
    line: rec.line,
    raw: rec.raw,
    column: '交易状态',
    reason: `${JSON.stringify(state)} is not a known trade state (SUCCESS, REFUND, REVOKED, ...)`,
  };
}

// Summary column -> detail column whose sum it must equal.
const SUMS: Record<string, string> = {
  应结订单总金额: '应结订单金额',
  退款总金额: '退款金额',
  手续费总金额: '手续费',
  订单总金额: '订单金额',
  申请退款总金额: '申请退款金额',
};

function checkSummary(headerRec: CsvRecord, row: CsvRecord, details: CsvRecord[], cols: Columns): FileProblem | undefined {
  const names = headerRec.fields.map((f) => f.trim());
  if (row.fields.length !== names.length)
    return { line: row.line, column: '', reason: `the summary has ${row.fields.length} fields, its header ${names.length}` };
  const summary = new Columns(names);
  const count = unquote(summary.get(row.fields, SUMMARY_HEADER_FIRST));
  if (!/^\d+$/.test(count)) return { line: row.line, column: SUMMARY_HEADER_FIRST, reason: `${JSON.stringify(count)} is not a count` };
  if (Number(count) !== details.length)
    return { line: row.line, column: SUMMARY_HEADER_FIRST, reason: `the summary counts ${count} lines, the details have ${details.length}` };
  for (const [sumColumn, detailColumn] of Object.entries(SUMS)) {
    if (!summary.has(sumColumn) || !cols.has(detailColumn)) continue;
    const stated = parseDecimal(unquote(summary.get(row.fields, sumColumn)));
    if (!stated.ok) return { line: row.line, column: sumColumn, reason: stated.reason };
    const values: Decimal[] = [];
    for (const rec of details) {
      const d = parseDecimal(unquote(cols.get(rec.fields, detailColumn)) || '0');
      if (d.ok) values.push(d.value);
    }
    const total = sumDecimals(values);
    if (!decimalsEqual(total, stated.value))
      return { line: row.line, column: sumColumn, reason: `the summary says ${formatDecimal(stated.value)}, the details add up to ${formatDecimal(total)}` };
  }
  return undefined;
}
