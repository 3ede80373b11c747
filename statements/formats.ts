import { parseAlipay } from './alipay.ts';
import { parseGeneric } from './generic.ts';
import { parseStripe } from './stripe.ts';
import type { ParseOutcome, StatementFormat } from './types.ts';
import { parseWechat } from './wechat.ts';

const parsers: Record<StatementFormat, (bytes: Uint8Array) => ParseOutcome> = {
  generic: parseGeneric,
  wechat: parseWechat,
  alipay: parseAlipay,
  stripe: parseStripe,
};

/** Parses a statement file's bytes in `format`. Never throws for bad input: problems are values. */
export const parseStatement = (format: StatementFormat, bytes: Uint8Array): ParseOutcome => parsers[format](bytes);

/** The channel a format's lines belong to by default (the event contract's channel names). */
export const defaultChannel: Record<StatementFormat, string> = { generic: '', wechat: 'wechat_pay', alipay: 'alipay', stripe: 'card' };
