import iconv from 'iconv-lite';
import { formatDecimal, formatMinor } from './money.ts';
import type { StatementLineOut } from './simulated.ts';
import type { Period, StatementFormat } from './types.ts';

/**
 * Writes statement lines as a file of each format, laid out as the provider does (the parsers'
 * counterpart): used by the simulator (`simulate --statement`), tests and the benchmark.
 */

const csvField = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
const beijing = (ms: number): string => new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
const utc = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
// WeChat Pay's 0.6% fee, exactly: fen × 6 at 5 decimals of a yuan.
const wechatFee = (minor: number): string => formatDecimal({ units: BigInt(minor) * 6n, scale: 5 });

export function writeStatement(format: StatementFormat, lines: readonly StatementLineOut[], period: Period): Buffer {
  switch (format) {
    case 'generic':
      return writeGeneric(lines);
    case 'wechat':
      return writeWechat(lines);
    case 'alipay':
      return writeAlipay(lines, period);
    case 'stripe':
      return writeStripe(lines);
  }
}

function writeGeneric(lines: readonly StatementLineOut[]): Buffer {
  const rows = lines.map((l) =>
    [l.transactionId, l.orderId, l.type, formatMinor(l.amountMinor, l.currency), l.currency, new Date(l.occurredAtMs).toISOString(), '']
      .map(csvField)
      .join(','),
  );
  return Buffer.from(['transaction_id,order_id,type,amount,currency,occurred_at,fee', ...rows].join('\n') + '\n', 'utf8');
}

const WECHAT_HEADER =
  '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';

function writeWechat(lines: readonly StatementLineOut[]): Buffer {
  let settle = 0n;
  let refund = 0n;
  let fee = 0n;
  const out = [WECHAT_HEADER];
  for (const l of lines) {
    const amount = formatMinor(l.amountMinor, l.currency);
    const pay = l.type === 'payment';
    if (pay) settle += BigInt(l.amountMinor);
    else refund += BigInt(l.amountMinor);
    fee += (pay ? 6n : -6n) * BigInt(l.amountMinor);
    const zero = formatMinor(0, l.currency);
    const fields = [
      beijing(l.occurredAtMs),
      'wx2421b1c4370ec43b',
      '1900000109',
      '0',
      '',
      l.transactionId,
      l.orderId,
      'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o',
      'JSAPI',
      pay ? 'SUCCESS' : 'REFUND',
      'OTHERS',
      l.currency,
      pay ? amount : zero,
      zero,
      pay ? '0' : l.refundId,
      pay ? '0' : `m${l.refundId}`,
      pay ? zero : amount,
      zero,
      pay ? '' : 'ORIGINAL',
      pay ? '' : 'SUCCESS',
      'paysentinel simulated order',
      '',
      (pay ? '' : '-') + wechatFee(l.amountMinor),
      '0.60%',
      pay ? amount : zero,
      pay ? zero : amount,
      '',
    ];
    out.push(fields.map((f) => '`' + f).join(','));
  }
  const yuan = (minor: bigint) => formatMinor(minor, 'CNY');
  out.push('总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额');
  out.push(
    [String(lines.length), yuan(settle), yuan(refund), '0.00', formatDecimal({ units: fee, scale: 5 }), yuan(settle), yuan(refund)]
      .map((f) => '`' + f)
      .join(','),
  );
  return Buffer.from(out.join('\r\n') + '\r\n', 'utf8');
}

const ALIPAY_HEADER =
  '支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,' +
  '支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,' +
  '退款批次号/请求号,服务费（元）,分润（元）,备注';

function writeAlipay(lines: readonly StatementLineOut[], period: Period): Buffer {
  const day = (ms: number) => {
    const t = beijing(ms);
    return `${t.slice(0, 4)}年${t.slice(5, 7)}月${t.slice(8, 10)}日 ${t.slice(11)}`;
  };
  const out = [
    '#支付宝业务明细查询',
    '#账号：[20880000000000000156]',
    `#起始日期：[${day(period.fromMs)}]   终止日期：[${day(period.toMs)}]`,
    '#-----------------------------------------业务明细列表----------------------------------------',
    ALIPAY_HEADER,
  ];
  let trades = 0;
  let tradeSum = 0n;
  let refunds = 0;
  let refundSum = 0n;
  for (const l of lines) {
    const pay = l.type === 'payment';
    const amount = (pay ? '' : '-') + formatMinor(l.amountMinor, 'CNY');
    if (pay) {
      trades++;
      tradeSum += BigInt(l.amountMinor);
    } else {
      refunds++;
      refundSum -= BigInt(l.amountMinor);
    }
    const t = beijing(l.occurredAtMs);
    out.push(
      [
        `${l.transactionId}\t`,
        `${l.orderId}\t`,
        pay ? '交易\t' : '退款\t',
        'paysentinel simulated order',
        t,
        t,
        '\t',
        '\t',
        '\t',
        '\t',
        'buy***@example.com\t',
        amount,
        amount,
        '0.00',
        '0.00',
        '0.00',
        '0.00',
        '0.00',
        '',
        '0.00\t',
        '0.00',
        pay ? '\t' : `${l.refundId}\t`,
        '0.00',
        '0.00',
        '',
      ].join(','),
    );
  }
  out.push('#-----------------------------------------业务明细列表结束------------------------------------');
  out.push(`#交易合计：${trades}笔，商家实收共${formatMinor(tradeSum, 'CNY')}元，商家优惠共0.00元`);
  out.push(`#退款合计：${refunds}笔，商家实收退款共${formatMinor(refundSum, 'CNY')}元，商家优惠退款共0.00元`);
  out.push(`#导出时间：[${day(period.toMs)}]`);
  return iconv.encode(out.join('\r\n') + '\r\n', 'gbk');
}

function writeStripe(lines: readonly StatementLineOut[]): Buffer {
  const out = ['balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,description,charge_id,payment_metadata[order_id]'];
  lines.forEach((l, i) => {
    const pay = l.type === 'payment';
    const gross = (pay ? '' : '-') + formatMinor(l.amountMinor, l.currency);
    const zero = formatMinor(0, l.currency);
    out.push(
      [
        `txn_${i + 1}`,
        utc(l.occurredAtMs),
        l.currency.toLowerCase(),
        gross,
        zero,
        gross,
        pay ? 'charge' : 'refund',
        pay ? l.transactionId : l.refundId,
        pay ? 'Payment' : 'REFUND FOR CHARGE',
        l.transactionId,
        l.orderId,
      ]
        .map(csvField)
        .join(','),
    );
  });
  return Buffer.from(out.join('\n') + '\n', 'utf8');
}
