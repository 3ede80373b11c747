import type { Kafka, Producer } from 'kafkajs';
import type { CommandResult, PaymentCommand } from '../contract/command.ts';
import type { PaymentEvent } from '../contract/schema.ts';
import type { Logger } from '../log/index.ts';
import type { MessageSink } from './run.ts';

/**
 * `paysentinel simulate --answer-commands`: the simulator plays the payment gateway too, so a
 * demo shows the loop close. A status query finds the stuck attempt succeeded (the callback was
 * only late) and says so with a status_query event; a refund is carried out with a refund event;
 * a block is confirmed on the results topic; a retry is refused (it is not simulated). Answers
 * are keyed by command_id (the answer event's id derives from it), so a command delivered twice
 * is carried out once, as a real gateway must.
 */

/** What the simulator remembers of an order it sent, to answer for it. */
export interface OrderFacts {
  channel: string;
  merchant_id: string;
  user_id?: string;
  amount_minor: number;
  currency: string;
}

/** Orders remembered at most; the oldest are forgotten first. */
const MAX_ORDERS = 200_000;

/** The answer to one command: an event for the events topic, a message for the results topic, or both. */
export function answerCommand(c: PaymentCommand, order: OrderFacts | undefined, nowMs: number): { event?: PaymentEvent; result?: CommandResult } {
  const at = new Date(nowMs).toISOString();
  if (c.type === 'block') return { result: { command_id: c.command_id, status: 'done', detail: `blocked ${c.entity_type} ${c.entity_id} for ${c.ttl} s` } };
  if (c.type === 'retry') return { result: { command_id: c.command_id, status: 'rejected', detail: 'the simulated gateway does not retry payments' } };
  if (!order || !c.order_id) return { result: { command_id: c.command_id, status: 'failed', detail: `order ${c.order_id ?? '?'} is unknown to this gateway` } };
  const base = {
    event_id: `ans-${c.command_id}`,
    occurred_at: at,
    order_id: c.order_id,
    attempt: c.attempt,
    ...(c.transaction_id ? { transaction_id: c.transaction_id } : {}),
    channel: order.channel,
    merchant_id: order.merchant_id,
    ...(order.user_id ? { user_id: order.user_id } : {}),
  };
  if (c.type === 'requery_status')
    return { event: { ...base, type: 'payment', status: 'succeeded', amount_minor: order.amount_minor, currency: order.currency, source: 'status_query' } };
  return {
    event: {
      ...base,
      type: 'refund',
      status: 'succeeded',
      amount_minor: c.amount_minor ?? order.amount_minor,
      currency: c.currency ?? order.currency,
      source: 'gateway_callback',
    },
    result: { command_id: c.command_id, status: 'done', detail: 'refunded' },
  };
}

/** A sink that remembers the orders of what it sends, then passes it on. */
export function rememberingSink(sink: MessageSink, orders: Map<string, OrderFacts>): MessageSink {
  return {
    send: async (record) => {
      for (const m of record.messages) {
        try {
          const e = JSON.parse(String(m.value)) as Partial<PaymentEvent>;
          if (typeof e.order_id !== 'string' || typeof e.channel !== 'string' || typeof e.merchant_id !== 'string') continue;
          orders.delete(e.order_id);
          orders.set(e.order_id, {
            channel: e.channel,
            merchant_id: e.merchant_id,
            user_id: e.user_id,
            amount_minor: Number(e.amount_minor ?? 0),
            currency: String(e.currency ?? 'CNY'),
          });
          if (orders.size > MAX_ORDERS) orders.delete(orders.keys().next().value!);
        } catch {
          // Deliberately invalid traffic (--invalid-share) is not an order.
        }
      }
      return sink.send(record);
    },
  };
}

export interface CommandAnswerer {
  answered(): number;
  stop(): Promise<void>;
}

/**
 * Answers the commands published from now on (consumer group `<client id>-simulated-gateway`).
 * "From now on" is the topic's end offsets read before subscribing, not the group's reset to the
 * latest offset: that happens only once the group has joined, seconds later for a new group
 * (Kafka delays its first join), and commands published meanwhile would never be answered.
 */
export async function startCommandAnswerer(deps: {
  kafka: Kafka;
  producer: Pick<Producer, 'send'>;
  groupId: string;
  commandsTopic: string;
  eventsTopic: string;
  resultsTopic: string;
  orders: ReadonlyMap<string, OrderFacts>;
  logger: Logger;
}): Promise<CommandAnswerer> {
  const admin = deps.kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(deps.commandsTopic).finally(() => admin.disconnect());
  const startAt = new Map(ends.map((o) => [o.partition, BigInt(o.high)]));
  const consumer = deps.kafka.consumer({ groupId: deps.groupId });
  const done = new Set<string>();
  await consumer.connect();
  // From the beginning when the group has no offsets yet; what was there before is skipped.
  await consumer.subscribe({ topic: deps.commandsTopic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      if (BigInt(message.offset) < (startAt.get(partition) ?? 0n)) return;
      let c: PaymentCommand;
      try {
        c = JSON.parse(String(message.value)) as PaymentCommand;
      } catch {
        return;
      }
      if (typeof c.command_id !== 'string' || done.has(c.command_id)) return;
      const { event, result } = answerCommand(c, c.order_id ? deps.orders.get(c.order_id) : undefined, Date.now());
      if (event) await deps.producer.send({ topic: deps.eventsTopic, messages: [{ key: event.order_id, value: JSON.stringify(event) }] });
      if (result)
        await deps.producer.send({ topic: deps.resultsTopic, messages: [{ key: c.order_id ?? c.entity_id ?? c.command_id, value: JSON.stringify(result) }] });
      done.add(c.command_id);
      deps.logger.info('simulated gateway answered a command', { command_id: c.command_id, type: c.type });
    },
  });
  return {
    answered: () => done.size,
    async stop() {
      await consumer.disconnect();
    },
  };
}
