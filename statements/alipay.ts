import { beijingDay, buildLine, Columns, csvRecords, decodeGbk, parseBeijingTime, type CsvRecord } from './parse.ts';
import { decimalsEqual, formatDecimal, parseDecimal, sumDecimals, type Decimal } from './money.ts';
import type { FileProblem, ParsedLine, ParseOutcome, Period } from './types.ts';

const HEADER_FIRST = '支付宝交易号';
const REQUIRED = ['支付宝交易号', '商户订单号', '业务类型', '完成时间', '订单金额（元）', '商家实收（元）'] as const;
const END_MARKER = '业务明细列表结束';

const clean = (f: string): string => f.replace(/\t/g, '').trim();

/**
 * Alipay's business detail file (业务明细, the *_业务明细.csv of the bill download) as downloaded:
 * GBK, `#` comment lines before the table (title, account, 起始日期/终止日期 = the period, a start
 * marker) and after it (the end marker, then 交易合计 and 退款合计 lines that must agree with the
 * table). Ids carry a trailing tab, which is dropped. 业务类型 交易 is a payment, 退款 a refund (its
 * amounts negative in the file, positive here). 支付宝交易号 is the transaction id, 商户订单号 our
 * order id, 完成时间 (Beijing time) when it settled; the CNY amount is 订单金额（元）.
 */
export function parseAlipay(bytes: Uint8Array): ParseOutcome {
  const fail = (p: FileProblem, lines: ParsedLine[] = []): ParseOutcome => ({ ok: false, problem: p, lines });
  const asUtf8 = utf8Text(bytes);
  if (asUtf8 !== undefined && asUtf8.includes(HEADER_FIRST)) {
    return fail({
      line: 1,
      column: '',
      reason: 'the file is UTF-8, but Alipay 业务明细 files are GBK as downloaded (import the downloaded file, not a re-saved copy)',
    });
  }
  const decoded = decodeGbk(bytes);
  if (!decoded.ok) return fail(decoded.problem);
  const { records, problem } = csvRecords(decoded.text);
  if (problem) return fail(problem);
  const isComment = (r: CsvRecord) => (r.fields[0] ?? '').trimStart().startsWith('#');
  const headerAt = records.findIndex((r) => !isComment(r));
  const header = records[headerAt];
  if (!header || clean(header.fields[0] ?? '') !== HEADER_FIRST) {
    return fail({
      line: header?.line ?? 1,
      column: '',
      reason: `not an Alipay 业务明细 file: expected the table header starting with ${HEADER_FIRST} after the # lines`,
    });
  }
  const cols = new Columns(header.fields.map(clean));
  const missing = cols.missing(REQUIRED);
  if (missing.length > 0) return fail({ line: header.line, column: missing[0]!, reason: 'required column missing from the header' });
  const period = periodFrom(
    records
      .slice(0, headerAt)
      .map((r) => r.raw)
      .join('\n'),
  );
  const endAt = records.findIndex((r, i) => i > headerAt && isComment(r) && r.raw.includes(END_MARKER));
  const details = records.slice(headerAt + 1, endAt < 0 ? undefined : endAt).filter((r) => !isComment(r));
  const lines = details.map((rec) => detailLine(rec, cols, header.fields.length));
  if (endAt < 0)
    return fail(
      { line: (records[records.length - 1]?.line ?? 0) + 1, column: '', reason: `the file ends before the #...${END_MARKER} line: truncated` },
      lines,
    );
  const trailer = records.slice(endAt + 1);
  const summaryProblem = checkSummary(trailer, details, cols, records[endAt]!.line);
  if (summaryProblem) return fail(summaryProblem, lines);
  let statementPeriod: Period | undefined = period;
  if (!statementPeriod) {
    const t = details.map((r) => parseBeijingTime(clean(cols.get(r.fields, '完成时间')))).find((x): x is number => x !== null);
    if (t !== undefined) statementPeriod = beijingDay(t);
  }
  return { ok: true, statement: { format: 'alipay', lines, period: statementPeriod } };
}

function utf8Text(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

// #起始日期：[2026年10月03日 00:00:00]   终止日期：[2026年10月04日 00:00:00]
function periodFrom(text: string): Period | undefined {
  const m = /起始日期[：:]\s*\[(\d{4})年(\d{2})月(\d{2})日 (\d{2}:\d{2}:\d{2})\]\s*终止日期[：:]\s*\[(\d{4})年(\d{2})月(\d{2})日 (\d{2}:\d{2}:\d{2})\]/.exec(
    text,
  );
  if (!m) return undefined;
  const fromMs = parseBeijingTime(`${m[1]}-${m[2]}-${m[3]} ${m[4]}`);
  const toMs = parseBeijingTime(`${m[5]}-${m[6]}-${m[7]} ${m[8]}`);
  return fromMs !== null && toMs !== null && fromMs < toMs ? { fromMs, toMs } : undefined;
}

function detailLine(rec: CsvRecord, cols: Columns, width: number): ParsedLine {
  if (rec.fields.length !== width) {
    return {
      status: 'invalid',
      line: rec.line,
      raw: rec.raw,
      column: '',
      reason: `has ${rec.fields.length} fields, the header has ${width} (a truncated or malformed line)`,
    };
  }
  const get = (c: string) => clean(cols.get(rec.fields, c));
  const kind = get('业务类型');
  if (kind !== '交易' && kind !== '退款') return { status: 'not_settled', line: rec.line, raw: rec.raw, reason: `业务类型 ${kind || '(empty)'}` };
  const amount = get('订单金额（元）');
  const negative = amount.startsWith('-');
  if (kind === '退款' && !negative)
    return {
      status: 'invalid',
      line: rec.line,
      raw: rec.raw,
      column: '订单金额（元）',
      reason: `a refund's amount is negative in Alipay files, got ${amount}`,
    };
  if (kind === '交易' && negative)
    return { status: 'invalid', line: rec.line, raw: rec.raw, column: '订单金额（元）', reason: `a trade's amount is positive in Alipay files, got ${amount}` };
  const at = get('完成时间');
  return buildLine(rec, {
    transactionId: ['支付宝交易号', get('支付宝交易号')],
    orderId: ['商户订单号', get('商户订单号')],
    type: kind === '交易' ? 'payment' : 'refund',
    amount: ['订单金额（元）', negative ? amount.slice(1) : amount],
    currency: ['(currency)', 'CNY'],
    occurredAtMs: ['完成时间', parseBeijingTime(at), at],
    fee: cols.has('服务费（元）') ? ['服务费（元）', get('服务费（元）').replace(/^-/, '')] : undefined,
    refundId: kind === '退款' ? get('退款批次号/请求号') : '',
    requireTransactionId: true,
  });
}

// #交易合计：2笔，商家实收共36.80元，商家优惠共0.00元 / #退款合计：1笔，商家实收退款共-35.80元，...
const TOTAL = /^#(交易|退款)合计[：:]\s*(\d+)笔[，,]\s*商家实收(?:退款)?共(-?[\d.]+)元/;

function checkSummary(trailer: CsvRecord[], details: CsvRecord[], cols: Columns, endLine: number): FileProblem | undefined {
  for (const kind of ['交易', '退款'] as const) {
    const rec = trailer.find((r) => r.raw.startsWith(`#${kind}合计`));
    if (!rec) return { line: endLine + 1, column: '', reason: `the #${kind}合计 line is missing after the table: truncated` };
    const m = TOTAL.exec(rec.raw);
    if (!m)
      return {
        line: rec.line,
        column: '',
        reason: `#${kind}合计 line not understood (expected "#${kind}合计：N笔，商家实收${kind === '退款' ? '退款' : ''}共X元，...")`,
      };
    const ofKind = details.filter((r) => clean(cols.get(r.fields, '业务类型')) === kind);
    if (Number(m[2]) !== ofKind.length) return { line: rec.line, column: `${kind}合计`, reason: `says ${m[2]} lines, the table has ${ofKind.length}` };
    const stated = parseDecimal(m[3]!);
    if (!stated.ok) return { line: rec.line, column: `${kind}合计`, reason: stated.reason };
    const values: Decimal[] = [];
    for (const r of ofKind) {
      const d = parseDecimal(clean(cols.get(r.fields, '商家实收（元）')) || '0');
      if (d.ok) values.push(d.value);
    }
    const total = sumDecimals(values);
    if (!decimalsEqual(total, stated.value))
      return { line: rec.line, column: `${kind}合计`, reason: `says 商家实收 ${formatDecimal(stated.value)}, the table adds up to ${formatDecimal(total)}` };
  }
  return undefined;
}
