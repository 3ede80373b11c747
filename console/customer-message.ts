import type { Case } from '../cases/index.ts';
import { renderMessage, type MessagePart, type MessageValues, type RuleSet } from '../rules/index.ts';
import { currencyExponent } from '../statements/money.ts';
import type { OrderReport, OrderStory } from './orders.ts';

/** Rule id -> its customer message template (rules/definitions/<rule_id>.message.txt). */
export type CustomerMessages = ReadonlyMap<string, readonly MessagePart[]>;

export const customerMessagesOf = (ruleSet: RuleSet): CustomerMessages =>
  new Map(ruleSet.rules.flatMap((r) => (r.customerMessage ? [[r.id, r.customerMessage.parts] as const] : [])));

/**
 * Minor units as major units with the currency's ISO 4217 exponent: 1250 CNY -> "12.50",
 * 1250 JPY -> "1250", 1250 KWD -> "1.250". Exact (string arithmetic, no float). A currency
 * without a known exponent keeps its minor units and says so, rather than guess the decimals.
 */
export function formatAmount(amountMinor: string, currency: string): string {
  const exponent = currencyExponent(currency);
  if (!/^-?\d+$/.test(amountMinor) || exponent === undefined) return `${amountMinor} (minor units)`;
  const negative = amountMinor.startsWith('-');
  const digits = (negative ? amountMinor.slice(1) : amountMinor).replace(/^0+(?=\d)/, '');
  if (exponent === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(exponent + 1, '0');
  return `${negative ? '-' : ''}${padded.slice(0, -exponent)}.${padded.slice(-exponent)}`;
}

/** A stored `YYYY-MM-DD HH:MM:SS` (UTC) as the message shows it: `YYYY-MM-DD HH:MM UTC`. */
export const messageTime = (occurredAt: string): string => `${occurredAt.slice(0, 16)} UTC`;

/**
 * The payment report a customer message is about: in the order's latest attempt that succeeded
 * (the charge the customer asks about), otherwise in its latest attempt (still processing,
 * blocked, failed), the first report of the attempt's outcome: when the charge went through, or
 * when the payment started processing. Null for an order without payment attempts.
 */
export function messageReport(story: OrderStory): OrderReport | null {
  const attempt = [...story.attempts].reverse().find((a) => a.outcome === 'succeeded') ?? story.attempts.at(-1);
  return attempt?.reports.find((r) => r.status === attempt.outcome) ?? attempt?.reports.at(-1) ?? null;
}

/** The values of a message's placeholders, from the order's story. */
export function messageValues(story: OrderStory): MessageValues | null {
  const r = messageReport(story);
  if (!r) return null;
  return {
    order_id: story.order_id,
    amount: formatAmount(String(r.amount_minor), r.currency),
    currency: r.currency,
    time: messageTime(r.occurred_at),
    channel: r.channel,
    transaction_id: r.transaction_id || 'not assigned yet',
  };
}

/** The ready-to-send message of an order case, or null (not an order case, no template for its rule, no payment of the order stored). Pure. */
export function customerMessage(c: Pick<Case, 'rule_id' | 'entity_type'>, story: OrderStory | null, messages: CustomerMessages): string | null {
  const parts = messages.get(c.rule_id);
  if (c.entity_type !== 'order' || !parts || !story) return null;
  const values = messageValues(story);
  return values ? renderMessage(parts, values) : null;
}
