import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { MAX_AMOUNT_MINOR } from './schema.ts';
import { parseRfc3339 } from './validate.ts';

/**
 * The command contract, version 1: what paysentinel tells the payment gateway to do
 * (`payments.commands`) and what the gateway answers (`payments.command-results`). The JSON
 * Schema files beside this one are generated from it (contract/generate-schema.ts).
 */
export const commandTypes = ['requery_status', 'refund', 'block', 'retry'] as const;
export type CommandType = (typeof commandTypes)[number];
/** Statuses a gateway may answer with on the results topic. */
export const resultStatuses = ['done', 'rejected', 'failed'] as const;
export type ResultStatus = (typeof resultStatuses)[number];
/** Every status a stored command can have: issued, then an outcome, or expired without one. */
export const commandStatuses = ['issued', 'done', 'rejected', 'failed', 'expired', 'cancelled'] as const;
export type CommandStatus = (typeof commandStatuses)[number];

/** Upper bound of a command-results message (bytes): anything larger is not a result. */
export const MAX_RESULT_BYTES = 16 * 1024;

const id = (description: string) => Type.String({ minLength: 1, maxLength: 128, description });
const oneOf = <T extends readonly string[]>(values: T, description: string) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });
const time = (description: string) => Type.String({ format: 'rfc3339', description });

export const PaymentCommandSchema = Type.Object(
  {
    command_id: Type.String({
      pattern: '^K[0-9a-f]{24}$',
      description:
        'The idempotency key: the same command (type, case and attempt; a refund: the attempt alone) always has the same id, ' +
        'across restarts and instances. A gateway must carry out one id at most once. Delivery is at least once: after a crash or ' +
        'a leader change a command whose publication was not recorded is published again under the same id, so a consumer ' +
        'dedupes by command_id (a repeated id is not a new command).',
    }),
    type: oneOf(commandTypes, 'requery_status | refund | block | retry.'),
    case_id: Type.String({ description: 'The case the command handles ("" for the scheduled re-check).' }),
    rule_id: Type.String({ description: 'The rule whose case it is ("" for the scheduled re-check).' }),
    order_id: Type.Optional(id('requery_status, refund, retry: the order.')),
    attempt: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'requery_status, refund, retry: the attempt.' })),
    transaction_id: Type.Optional(id("refund: the platform's serial number of the charge to refund (when known).")),
    amount_minor: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_AMOUNT_MINOR, description: 'refund: the amount, in minor units.' })),
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: 'refund: ISO 4217 code.' })),
    entity_type: Type.Optional(oneOf(['ip', 'device', 'user'] as const, 'block: what is blocked.')),
    entity_id: Type.Optional(id('block: the IP, device or user id.')),
    ttl: Type.Optional(Type.Integer({ minimum: 1, description: 'block: how long the block lasts, in seconds.' })),
    issued_at: time('When paysentinel issued the command.'),
    expires_at: time('After this the command is no longer wanted: a gateway should not carry it out, and paysentinel escalates it.'),
    reason: Type.String({ maxLength: 2000, description: 'Why, in words, for the gateway operator.' }),
  },
  {
    $id: 'https://paysentinel.dev/schemas/payment-command.v1.json',
    title: 'paysentinel payment command v1',
    description: 'One JSON object per Kafka message on payments.commands, UTF-8, key = order_id (or entity_id for a block).',
    additionalProperties: false,
  },
);
export type PaymentCommand = Static<typeof PaymentCommandSchema>;

export const CommandResultSchema = Type.Object(
  {
    command_id: Type.String({ pattern: '^K[0-9a-f]{24}$', description: 'The command answered.' }),
    status: oneOf(resultStatuses, 'done | rejected (the gateway refused it) | failed (it tried and could not).'),
    detail: Type.Optional(Type.String({ maxLength: 2000, description: 'What happened, in words.' })),
  },
  {
    $id: 'https://paysentinel.dev/schemas/command-result.v1.json',
    title: 'paysentinel command result v1',
    description:
      `One JSON object per Kafka message on payments.command-results, UTF-8, at most ${MAX_RESULT_BYTES} bytes. ` +
      'A requery_status is answered by a payment event (source status_query) and a refund by a refund event; any command may also be answered here.',
    additionalProperties: true,
  },
);
export type CommandResult = Static<typeof CommandResultSchema>;

const ajv = new Ajv({ allErrors: false, strict: false });
ajv.addFormat('rfc3339', { type: 'string', validate: (v: string) => parseRfc3339(v) !== null });
const checkResult = ajv.compile<CommandResult>(CommandResultSchema);
const checkCommand = ajv.compile<PaymentCommand>(PaymentCommandSchema);

/** A results message read from Kafka: the result, or why it is not one (for the dead-letter topic). */
export function decodeCommandResult(value: Buffer | null): { ok: true; result: CommandResult } | { ok: false; reason: string } {
  if (!value || value.length === 0) return { ok: false, reason: 'empty message' };
  if (value.length > MAX_RESULT_BYTES) return { ok: false, reason: `larger than ${MAX_RESULT_BYTES} bytes` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!checkResult(parsed)) {
    const e = checkResult.errors?.[0];
    return { ok: false, reason: `breaks the command-result contract: ${e ? `${e.instancePath || '/'} ${e.message}` : 'invalid'}` };
  }
  return { ok: true, result: parsed };
}

/** Whether a command as built matches its own contract (a programmer error otherwise). */
export function commandProblem(c: unknown): string | null {
  if (checkCommand(c)) return null;
  const e = checkCommand.errors?.[0];
  return e ? `${e.instancePath || '/'} ${e.message}` : 'invalid';
}
