import { Type, type Static } from '@sinclair/typebox';

/**
 * The payment-event contract, version 1: the one source for the JSON Schema file
 * (`contract/payment-event.v1.schema.json`, generated) and for the TypeScript types.
 */
export const eventTypes = ['payment', 'refund'] as const;
export const eventStatuses = ['processing', 'succeeded', 'failed', 'timeout'] as const;
export const eventSources = ['gateway_callback', 'status_query', 'reconciliation', 'client'] as const;
export const knownFailureCodes = [
  'insufficient_funds',
  'card_declined',
  'risk_blocked',
  'network_error',
  'timeout',
  'user_cancelled',
  'invalid_account',
  'limit_exceeded',
  'system_error',
] as const;

/** Upper bound of `amount_minor`. */
export const MAX_AMOUNT_MINOR = 1e15;

const id = (description: string) => Type.String({ minLength: 1, maxLength: 128, description });
const oneOf = <T extends readonly string[]>(values: T, description: string) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });

export const PaymentEventSchema = Type.Object(
  {
    event_id: id('Unique per event; a redelivered event has the same id and counts once.'),
    occurred_at: Type.String({
      format: 'rfc3339',
      description: 'RFC 3339 timestamp with offset or Z, e.g. 2026-11-25T10:15:00.123Z (1970..2105).',
    }),
    type: oneOf(eventTypes, 'payment or refund.'),
    status: oneOf(eventStatuses, "Outcome reported by this event; for a refund, the refund's own status."),
    order_id: id('Merchant order number; also the Kafka message key.'),
    attempt: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Required for payments: 1 for the first try, 2+ for retries.' })),
    transaction_id: Type.Optional(id("The payment platform's serial number for this attempt.")),
    amount_minor: Type.Integer({ minimum: 0, maximum: MAX_AMOUNT_MINOR, description: 'Amount in minor units (fen, cents).' }),
    currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, three upper-case letters.' }),
    channel: Type.String({ minLength: 1, maxLength: 64, description: 'Payment platform or method: alipay, wechat_pay, card, ...' }),
    merchant_id: id('Merchant identifier.'),
    user_id: Type.Optional(id('Customer identifier.')),
    device_id: Type.Optional(id('Device fingerprint or identifier.')),
    ip: Type.Optional(Type.String({ format: 'ip', description: 'Client IPv4 or IPv6 address.' })),
    failure_code: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: `Required when status is failed or timeout. Known: ${knownFailureCodes.join(', ')}; unknown codes are kept as-is.`,
      }),
    ),
    source: Type.Optional(oneOf(eventSources, 'How this status was learned.')),
  },
  {
    $id: 'https://paysentinel.dev/schemas/payment-event.v1.json',
    title: 'paysentinel payment event v1',
    description: 'One JSON object per Kafka message on payments.events, UTF-8, key = order_id, at most 64 KiB. Unknown extra fields are accepted and kept.',
    additionalProperties: true,
    allOf: [
      { if: { properties: { type: { const: 'payment' } } }, then: { required: ['attempt'] } },
      { if: { properties: { status: { enum: ['failed', 'timeout'] } } }, then: { required: ['failure_code'] } },
    ],
  },
);

/** A payment event as producers send it (extra fields allowed). */
export type PaymentEvent = Static<typeof PaymentEventSchema>;
export type EventType = PaymentEvent['type'];
export type EventStatus = PaymentEvent['status'];
export type EventSource = NonNullable<PaymentEvent['source']>;

/**
 * The contract's fields, in the schema's order. The one list the others derive from: the stored
 * columns (ingest/records.ts, which adds occurred_ms) and the fields a rule feature may filter
 * on (rules/schema.ts, all but occurred_at).
 */
export const eventFields = [
  'event_id',
  'occurred_at',
  'type',
  'status',
  'order_id',
  'attempt',
  'transaction_id',
  'amount_minor',
  'currency',
  'channel',
  'merchant_id',
  'user_id',
  'device_id',
  'ip',
  'failure_code',
  'source',
] as const satisfies readonly (keyof PaymentEvent)[];
export type EventField = (typeof eventFields)[number];
/** Fails to compile while a field of the schema is missing from eventFields. */
const everyFieldListed: [Exclude<keyof PaymentEvent, EventField>] extends [never] ? true : never = true;
void everyFieldListed;

/** Field names defined by the contract; anything else is kept as an extra field. */
export const contractFields: ReadonlySet<string> = new Set(eventFields);
