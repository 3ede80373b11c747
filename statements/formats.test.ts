import { readFileSync } from 'node:fs';
import iconv from 'iconv-lite';
import { describe, expect, test } from 'vitest';
import { parseStatement } from './formats.ts';
import type { ParseOutcome, ParsedLine, SettledLine, StatementFormat } from './types.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const text = (name: string): string => fixture(name).toString('utf8');
const gbk = (s: string): Buffer => iconv.encode(s, 'gbk');
const alipayText = (): string => iconv.decode(fixture('alipay.csv'), 'gbk');
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

function settled(outcome: ParseOutcome): Omit<SettledLine, 'raw' | 'status'>[] {
  expect(outcome.ok, outcome.ok ? '' : JSON.stringify(outcome.problem)).toBe(true);
  if (!outcome.ok) return [];
  return outcome.statement.lines.filter((l): l is SettledLine => l.status === 'settled').map(({ raw: _raw, status: _s, ...rest }) => rest);
}

const at = (iso: string) => Date.parse(iso);
const fee = (units: bigint, scale: number) => ({ units, scale });

describe('fixtures import to the expected lines', () => {
  test('generic: any ISO 4217 exponent, refunds positive, hostile ids as data', () => {
    expect(settled(parseStatement('generic', fixture('generic.csv')))).toEqual([
      {
        line: 2,
        transactionId: '4200001',
        orderId: 'ord-1',
        type: 'payment',
        amountMinor: 1250,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T10:00:00Z'),
        fee: fee(8n, 2),
        refundId: '',
      },
      {
        line: 3,
        transactionId: '4200002',
        orderId: 'ord-2',
        type: 'payment',
        amountMinor: 1000,
        currency: 'JPY',
        occurredAtMs: at('2026-11-25T02:30:00.250Z'),
        fee: null,
        refundId: '',
      },
      {
        line: 4,
        transactionId: '4200003',
        orderId: 'ord-3',
        type: 'payment',
        amountMinor: 1234,
        currency: 'KWD',
        occurredAtMs: at('2026-11-25T12:00:00Z'),
        fee: fee(1n, 3),
        refundId: '',
      },
      {
        line: 5,
        transactionId: '4200001',
        orderId: 'ord-1',
        type: 'refund',
        amountMinor: 250,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T13:00:00Z'),
        fee: null,
        refundId: '',
      },
      {
        line: 6,
        transactionId: 'tx-"quoted",comma',
        orderId: "ord-'; DROP TABLE x; --",
        type: 'payment',
        amountMinor: 1,
        currency: 'USD',
        occurredAtMs: at('2026-11-25T23:59:59Z'),
        fee: null,
        refundId: '',
      },
      {
        line: 7,
        transactionId: 'tx\\back\\slash',
        orderId: '订单-支付-🙂',
        type: 'payment',
        amountMinor: 9999,
        currency: 'EUR',
        occurredAtMs: at('2026-11-25T00:00:00Z'),
        fee: fee(0n, 2),
        refundId: '',
      },
    ]);
    const ok = parseStatement('generic', fixture('generic.csv'));
    expect(ok.ok && ok.statement.period).toEqual({ fromMs: at('2026-11-25T00:00:00Z'), toMs: at('2026-11-26T00:00:00Z') });
    expect(ok.ok && ok.statement.lines[4]!.raw).toBe(`"tx-""quoted"",comma",ord-'; DROP TABLE x; --,payment,0.01,USD,2026-11-25T23:59:59Z,`);
  });

  test('wechat: backticks stripped, Beijing time, refunds separate, a processing refund is not settled', () => {
    const outcome = parseStatement('wechat', fixture('wechat.csv'));
    expect(settled(outcome)).toEqual([
      {
        line: 2,
        transactionId: '4200000901202611250000000001',
        orderId: 'ord-w1',
        type: 'payment',
        amountMinor: 990,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T00:15:02Z'),
        fee: fee(5940n, 5),
        refundId: '',
      },
      {
        line: 3,
        transactionId: '4200000901202611250000000002',
        orderId: 'ord-w2',
        type: 'payment',
        amountMinor: 6800,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T04:00:40Z'),
        fee: fee(40800n, 5),
        refundId: '',
      },
      {
        line: 4,
        transactionId: '4200000901202611250000000001',
        orderId: 'ord-w1',
        type: 'refund',
        amountMinor: 990,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T15:59:59Z'),
        fee: fee(5940n, 5),
        refundId: '50000000012026112500000001',
      },
    ]);
    expect(outcome.ok && outcome.statement.lines[3]).toMatchObject({ status: 'not_settled', line: 5, reason: 'refund with 退款状态 PROCESSING' });
    // The bill's day is the Beijing day: 00:00 +08 is 16:00 UTC the day before.
    expect(outcome.ok && outcome.statement.period).toEqual({ fromMs: at('2026-11-24T16:00:00Z'), toMs: at('2026-11-25T16:00:00Z') });
  });

  test('alipay: GBK, # lines around the table, trailing tabs dropped, period from the header', () => {
    const outcome = parseStatement('alipay', fixture('alipay.csv'));
    expect(settled(outcome)).toEqual([
      {
        line: 6,
        transactionId: '2026112522001400000000000001',
        orderId: 'ord-a1',
        type: 'payment',
        amountMinor: 3580,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T02:00:30Z'),
        fee: fee(21n, 2),
        refundId: '',
      },
      {
        line: 7,
        transactionId: '2026112522001400000000000002',
        orderId: 'ord-a2',
        type: 'payment',
        amountMinor: 100,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T15:59:58Z'),
        fee: fee(1n, 2),
        refundId: '',
      },
      {
        line: 8,
        transactionId: '2026112522001400000000000001',
        orderId: 'ord-a1',
        type: 'refund',
        amountMinor: 3580,
        currency: 'CNY',
        occurredAtMs: at('2026-11-25T07:00:00Z'),
        fee: fee(21n, 2),
        refundId: 'rf-a1',
      },
    ]);
    expect(outcome.ok && outcome.statement.period).toEqual({ fromMs: at('2026-11-24T16:00:00Z'), toMs: at('2026-11-25T16:00:00Z') });
  });

  test('stripe: charges and refunds by charge id, zero-decimal currencies, payouts not settled', () => {
    const outcome = parseStatement('stripe', fixture('stripe.csv'));
    expect(settled(outcome)).toEqual([
      {
        line: 2,
        transactionId: 'ch_1A',
        orderId: 'ord-s1',
        type: 'payment',
        amountMinor: 2500,
        currency: 'USD',
        occurredAtMs: at('2026-11-25T09:00:00Z'),
        fee: fee(103n, 2),
        refundId: '',
      },
      {
        line: 3,
        transactionId: 'ch_1B',
        orderId: 'ord-s2',
        type: 'payment',
        amountMinor: 1500,
        currency: 'JPY',
        occurredAtMs: at('2026-11-25T10:00:00Z'),
        fee: fee(75n, 0),
        refundId: '',
      },
      {
        line: 4,
        transactionId: 'ch_1A',
        orderId: 'ord-s1',
        type: 'refund',
        amountMinor: 500,
        currency: 'USD',
        occurredAtMs: at('2026-11-25T11:00:00Z'),
        fee: fee(0n, 2),
        refundId: 're_1C',
      },
    ]);
    expect(outcome.ok && outcome.statement.lines[3]).toMatchObject({ status: 'not_settled', line: 5, reason: 'reporting_category payout' });
  });
});

function invalidLines(outcome: ParseOutcome): Pick<Extract<ParsedLine, { status: 'invalid' }>, 'line' | 'column' | 'reason'>[] {
  expect(outcome.ok).toBe(true);
  return outcome.ok ? outcome.statement.lines.flatMap((l) => (l.status === 'invalid' ? [{ line: l.line, column: l.column, reason: l.reason }] : [])) : [];
}

describe('bad lines are named with their line and column', () => {
  const header = 'transaction_id,order_id,type,amount,currency,occurred_at,fee';
  const generic = (...rows: string[]) => utf8([header, ...rows].join('\n') + '\n');
  test.each([
    ['10.005 USD', 't1,o1,payment,10.005,USD,2026-11-25T10:00:00Z,', 'amount', 'cannot be represented exactly'],
    ['decimal comma', 't1,o1,payment,"12,5",CNY,2026-11-25T10:00:00Z,', 'amount', 'not a plain decimal number'],
    ['exponent', 't1,o1,payment,1e3,CNY,2026-11-25T10:00:00Z,', 'amount', 'not a plain decimal number'],
    ['unknown currency', 't1,o1,payment,1.00,XXY,2026-11-25T10:00:00Z,', 'currency', 'unknown currency "XXY"'],
    ['zero amount', 't1,o1,payment,0.00,CNY,2026-11-25T10:00:00Z,', 'amount', 'not a positive amount'],
    ['negative amount', 't1,o1,refund,-1.00,CNY,2026-11-25T10:00:00Z,', 'amount', 'not a positive amount'],
    ['bad type', 't1,o1,chargeback,1.00,CNY,2026-11-25T10:00:00Z,', 'type', 'is not payment or refund'],
    ['bad time', 't1,o1,payment,1.00,CNY,2026-11-31T10:00:00Z,', 'occurred_at', 'is not a valid time'],
    ['time without offset', 't1,o1,payment,1.00,CNY,2026-11-25 10:00:00,', 'occurred_at', 'is not a valid time'],
    ['no id at all', ',,payment,1.00,CNY,2026-11-25T10:00:00Z,', 'transaction_id', 'cannot be matched'],
    ['id too long', `${'x'.repeat(129)},o1,payment,1.00,CNY,2026-11-25T10:00:00Z,`, 'transaction_id', 'longer than 128'],
    ['bad fee', 't1,o1,payment,1.00,CNY,2026-11-25T10:00:00Z,0.1.2', 'fee', 'not a plain decimal number'],
    ['missing field', 't1,o1,payment,1.00,CNY,2026-11-25T10:00:00Z', '', 'has 6 fields, the header has 7'],
  ])('generic: %s', (_name, row, column, reason) => {
    const [problem, ...rest] = invalidLines(parseStatement('generic', generic('t0,o0,payment,1.00,CNY,2026-11-25T09:00:00Z,', row)));
    expect(rest).toEqual([]);
    expect(problem).toMatchObject({ line: 3, column });
    expect(problem!.reason).toContain(reason);
  });

  test('generic: every invalid line is listed, the valid ones still parse', () => {
    const outcome = parseStatement(
      'generic',
      generic('t1,o1,payment,1.005,CNY,2026-11-25T10:00:00Z,', 't2,o2,payment,1.00,CNY,2026-11-25T10:00:00Z,', 't3,o3,payment,1e3,CNY,2026-11-25T10:00:00Z,'),
    );
    expect(invalidLines(outcome).map((l) => l.line)).toEqual([2, 4]);
    expect(settled(outcome).map((l) => l.line)).toEqual([3]);
  });

  test('line numbers count blank lines and line breaks inside quoted fields, LF or CRLF', () => {
    for (const eol of ['\n', '\r\n']) {
      const text =
        [
          header,
          't1,o1,payment,1.00,CNY,2026-11-25T10:00:00Z,',
          '',
          '"t2\nsecond line",o2,payment,1.00,CNY,2026-11-25T10:00:00Z,',
          't3,o3,payment,1.005,CNY,2026-11-25T10:00:00Z,',
        ].join(eol) + eol;
      const outcome = parseStatement('generic', utf8(text));
      expect(outcome.ok && outcome.statement.lines.map((l) => l.line)).toEqual([2, 4, 6]);
      expect(invalidLines(outcome)).toEqual([{ line: 6, column: 'amount', reason: expect.any(String) }]);
    }
  });

  test('generic: a missing required column refuses the file, naming the column', () => {
    const outcome = parseStatement('generic', utf8('transaction_id,order_id,type,amount,occurred_at\nt,o,payment,1.00,2026-11-25T10:00:00Z\n'));
    expect(outcome).toMatchObject({ ok: false, problem: { line: 1, column: 'currency' } });
  });

  test('generic: an unclosed quote (a truncated file) refuses the file at its line', () => {
    const outcome = parseStatement('generic', generic('t0,o0,payment,1.00,CNY,2026-11-25T09:00:00Z,', '"t1,o1,payment,1.00,CNY'));
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.problem.line).toBe(3);
      expect(outcome.problem.reason).toContain('not readable as CSV');
    }
  });

  test('wrong encoding: GBK bytes given as UTF-8 formats name the line', () => {
    const bytes = Buffer.concat([utf8(header + '\nt0,o0,payment,1.00,CNY,2026-11-25T09:00:00Z,\n'), gbk('t1,订单,payment,1.00,CNY,2026-11-25T09:00:00Z,\n')]);
    expect(parseStatement('generic', bytes)).toMatchObject({ ok: false, problem: { line: 3, reason: expect.stringContaining('not valid UTF-8') } });
    expect(parseStatement('wechat', gbk(text('wechat.csv')))).toMatchObject({
      ok: false,
      problem: { line: 1, reason: expect.stringContaining('not valid UTF-8') },
    });
  });
});

describe('wechat: parts, backticks and the summary', () => {
  const lines = () => text('wechat.csv').split('\r\n');
  const join = (ls: string[]) => utf8(ls.join('\r\n'));
  test('a field without its backtick is invalid', () => {
    const ls = lines();
    ls[1] = ls[1]!.replace('`ord-w1', 'ord-w1');
    expect(invalidLines(parseStatement('wechat', join(ls)))).toEqual([{ line: 2, column: '商户订单号', reason: expect.stringContaining('backtick') }]);
  });
  test('an amount more precise than the fen is invalid', () => {
    const ls = lines();
    ls[2] = ls[2]!.replace('`0.60%,`68.00,', '`0.60%,`68.005,');
    ls[6] = ls[6]!.replace(/`77\.90,`10\.90$/, '`77.905,`10.90');
    expect(invalidLines(parseStatement('wechat', join(ls)))).toEqual([
      { line: 3, column: '订单金额', reason: '68.005 CNY cannot be represented exactly: CNY has 2 decimal places' },
    ]);
  });
  test('the summary disagreeing with the details refuses the file', () => {
    const ls = lines();
    ls[6] = ls[6]!.replace('`77.90,`10.90', '`77.91,`10.90');
    expect(parseStatement('wechat', join(ls))).toMatchObject({
      ok: false,
      problem: { line: 7, column: '应结订单总金额', reason: 'the summary says 77.91, the details add up to 77.90' },
    });
    const counted = lines();
    counted[6] = counted[6]!.replace('`4,', '`5,');
    expect(parseStatement('wechat', join(counted))).toMatchObject({
      ok: false,
      problem: { line: 7, column: '总交易单数', reason: 'the summary counts 5 lines, the details have 4' },
    });
  });
  test('a file cut before its summary is truncated', () => {
    expect(parseStatement('wechat', join(lines().slice(0, 4)))).toMatchObject({ ok: false, problem: { reason: expect.stringContaining('truncated') } });
    expect(parseStatement('wechat', join(lines().slice(0, 6)))).toMatchObject({ ok: false, problem: { reason: expect.stringContaining('truncated') } });
  });
  test('an unknown trade state is invalid', () => {
    const ls = lines();
    ls[1] = ls[1]!.replace('`SUCCESS', '`MAYBE');
    expect(invalidLines(parseStatement('wechat', join(ls)))).toEqual([{ line: 2, column: '交易状态', reason: expect.stringContaining('"MAYBE"') }]);
  });
  test('not a bill at all', () => {
    expect(parseStatement('wechat', fixture('generic.csv'))).toMatchObject({
      ok: false,
      problem: { line: 1, reason: expect.stringContaining('not a WeChat Pay trade bill') },
    });
  });
});

describe('alipay: GBK, comment lines and its own summary', () => {
  const lines = () => alipayText().split('\r\n');
  const join = (ls: string[]) => gbk(ls.join('\r\n'));
  test('a UTF-8 copy is refused as the wrong encoding', () => {
    expect(parseStatement('alipay', utf8(alipayText()))).toMatchObject({ ok: false, problem: { line: 1, reason: expect.stringContaining('GBK') } });
  });
  test('bytes that are not GBK are refused, naming the line', () => {
    const bytes = Buffer.concat([join(lines().slice(0, 6)), Buffer.from([0x0d, 0x0a, 0x81, 0x20, 0x0d, 0x0a]), join(lines().slice(6))]);
    expect(parseStatement('alipay', bytes)).toMatchObject({ ok: false, problem: { line: 7, reason: expect.stringContaining('not valid GBK') } });
  });
  test('the totals disagreeing with the table refuse the file', () => {
    const ls = lines();
    ls[9] = ls[9]!.replace('36.80', '36.81');
    expect(parseStatement('alipay', join(ls))).toMatchObject({
      ok: false,
      problem: { line: 10, column: '交易合计', reason: 'says 商家实收 36.81, the table adds up to 36.80' },
    });
    const refunds = lines();
    refunds[10] = refunds[10]!.replace('1笔', '2笔');
    expect(parseStatement('alipay', join(refunds))).toMatchObject({
      ok: false,
      problem: { line: 11, column: '退款合计', reason: 'says 2 lines, the table has 1' },
    });
  });
  test('a file cut before its end marker or totals is truncated', () => {
    expect(parseStatement('alipay', join(lines().slice(0, 7)))).toMatchObject({ ok: false, problem: { reason: expect.stringContaining('truncated') } });
    expect(parseStatement('alipay', join(lines().slice(0, 10)))).toMatchObject({ ok: false, problem: { reason: expect.stringContaining('truncated') } });
  });
  test("a refund's amount must be negative", () => {
    const ls = lines();
    ls[7] = ls[7]!.replace(',-35.80,-35.80,', ',35.80,-35.80,');
    expect(invalidLines(parseStatement('alipay', join(ls)))).toEqual([{ line: 8, column: '订单金额（元）', reason: expect.stringContaining('negative') }]);
  });
});

describe('stripe', () => {
  const lines = () => text('stripe.csv').trimEnd().split('\n');
  test.each([
    ['a charge with a negative gross', 1, (l: string) => l.replace(',25.00,', ',-25.00,'), 'gross'],
    ['a refund with a positive gross', 3, (l: string) => l.replace(',-5.00,0.00,', ',5.00,0.00,'), 'gross'],
    ['a charge without its charge id', 1, (l: string) => l.replace(',ch_1A,Order ord-s1,ch_1A,', ',,Order ord-s1,,'), 'source_id'],
    ['cents on a yen charge', 2, (l: string) => l.replace(',1500,', ',1500.50,'), 'gross'],
  ])('%s is invalid', (_name, index, edit, column) => {
    const ls = lines();
    ls[index] = edit(ls[index]!);
    expect(invalidLines(parseStatement('stripe', utf8(ls.join('\n') + '\n')))).toEqual([{ line: index + 1, column, reason: expect.any(String) }]);
  });
  test('a report without the required columns is refused', () => {
    expect(parseStatement('stripe', utf8('id,amount\nx,1\n'))).toMatchObject({ ok: false, problem: { line: 1, column: 'balance_transaction_id' } });
  });
});

test.each(['generic', 'wechat', 'alipay', 'stripe'] satisfies StatementFormat[])('%s: an empty file is refused', (format) => {
  expect(parseStatement(format, new Uint8Array()).ok).toBe(false);
});
