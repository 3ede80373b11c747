import type { PaymentEvent } from '../contract/index.ts';
import { createRng, hash32, int, logUniform, normal, type Rng, uniform, weighted } from './random.ts';
import { getScenario, type EntityType, type ScenarioContext } from './scenarios.ts';
import {
  channelWeights,
  createIds,
  currencyFor,
  deriveUser,
  merchants,
  orderAmount,
  runTagFor,
  toEvent,
  type Channel,
  type EventDraft,
  type User,
} from './world.ts';

/**
 * Deterministic traffic generator. Time is cut into send slots of 1000/rate ms; each slot
 * sends the earliest follow-up that is due (callback, retry, refund, redelivery, scenario
 * step) or else opens a new order. That keeps the message rate exact while follow-ups keep
 * their realistic delays, and it needs no clock: the runner decides when to send.
 */

/** One message to produce, in send order. */
export interface TrafficItem {
  /** Planned send time, ms after the run start; non-decreasing. */
  sendAtMs: number;
  /** Kafka key: the order id (for invalid messages, a plausible one). */
  key: string;
  /** The exact message bytes. */
  value: Buffer;
  kind: 'event' | 'redelivery' | 'invalid';
  /** The event the bytes encode (events and redeliveries). */
  event?: PaymentEvent;
  /** Scenario that produced this event, when injected. */
  scenario?: string;
}

export interface GeneratorOptions {
  seed: number;
  /** Messages per second, all kinds included. */
  rate: number;
  durationMs: number;
  /** Epoch ms of the run start; event times are startMs + sendAtMs. */
  startMs: number;
  /** Scenario names to inject, each once (see scenarios.ts). */
  scenarios?: readonly string[];
  /** Fraction of messages that are malformed. @default 0 */
  invalidShare?: number;
}

/** Ground truth for one injected scenario. */
export interface ScenarioLabel {
  scenario: string;
  rule_id: string;
  entity_type: EntityType;
  entity_id: string;
  first_event_at: string;
  event_ids: string[];
}

/** What `--labels` writes, so detection can be scored against it. */
export interface SimulationLabels {
  seed: number;
  rate: number;
  durationMs: number;
  startedAt: string;
  scenarios: ScenarioLabel[];
}

export interface TrafficGenerator extends Iterable<TrafficItem> {
  readonly options: Readonly<Required<GeneratorOptions>>;
  /** Messages the slots hold (rate × duration); follow-ups flushed at the end come on top. */
  readonly plannedCount: number;
  /** The next item, or null once the run and its end flush are exhausted. */
  next(): TrafficItem | null;
  /** Send time of the next item without taking it, or null when exhausted. */
  peekSendAtMs(): number | null;
  /** Labels of the scenario events handed out so far. */
  labels(): SimulationLabels;
}

/** Most attempts one IP may make in any 10 minutes of baseline traffic. */
export const BASELINE_MAX_ATTEMPTS_PER_IP = 5;
/** Most failed attempts one IP (and so one device) may have in any 10 minutes of baseline. */
export const BASELINE_MAX_FAILURES_PER_IP = 3;
const IP_WINDOW_MS = 10 * 60_000;
const REDELIVERY_SHARE = 0.005;
const REFUND_SHARE = 0.02;

interface Chain {
  lastAtMs: number;
}

interface Pending {
  dueAtMs: number;
  seq: number;
  draft?: EventDraft;
  backdateMs?: number;
  chain?: Chain;
  scenario?: string;
  redelivery?: TrafficItem;
}

/** Binary min-heap on (dueAtMs, seq): the follow-ups waiting for their slot. */
class PendingQueue {
  private items: Pending[] = [];
  get size(): number {
    return this.items.length;
  }
  private less(a: Pending, b: Pending): boolean {
    return a.dueAtMs < b.dueAtMs || (a.dueAtMs === b.dueAtMs && a.seq < b.seq);
  }
  peek(): Pending | undefined {
    return this.items[0];
  }
  push(item: Pending): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Pending | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

type OutcomeClass = 'ok' | 'transient' | 'cancel' | 'hard';

interface AttemptPlan {
  startAt: number;
  finalAt: number;
  viaProcessing: boolean;
  finalSource: 'gateway_callback' | 'status_query' | 'client';
  outcome: OutcomeClass;
  transientCode?: 'network_error' | 'timeout' | 'system_error';
}

/** Creates the generator; nothing happens until items are taken. */
export function createTrafficGenerator(input: GeneratorOptions): TrafficGenerator {
  const options: Required<GeneratorOptions> = {
    scenarios: [],
    invalidShare: 0,
    ...input,
  };
  const { seed, rate, durationMs, startMs, invalidShare } = options;
  if (!(rate > 0) || !(durationMs >= 0) || !(invalidShare >= 0 && invalidShare <= 1)) {
    throw new RangeError('rate must be > 0, durationMs >= 0 and invalidShare within 0..1');
  }
  // Traffic shape depends on the seed only; ids also mix in the start time, so two runs of
  // the same seed never collide on event or order ids in one database.
  const rng = createRng(seed, 0x51);
  const invalidRng = createRng(seed, 0x1b);
  const runKey = hash32(seed, startMs);
  const ids = createIds(createRng(runKey, 0x1d), startMs, runTagFor(seed, startMs));
  const plannedCount = Math.round((rate * durationMs) / 1000);
  const slotMs = 1000 / rate;
  // Enough customers that each orders about once per 10 minutes at this rate.
  const poolSize = Math.max(3000, Math.ceil(((rate / 1.6) * 600) / 1.2));
  let nextFreshUser = poolSize;
  const merchantWeights = Object.fromEntries(merchants.map((m) => [m.id, m.weight])) as Record<string, number>;

  const queue = new PendingQueue();
  let seq = 0;
  let slot = 0;
  let flushAtMs = durationMs;
  const ipAttempts = new Map<string, { at: number; failed: boolean }[]>();
  let lastSweepMs = 0;

  const labelByScenario = new Map<string, ScenarioLabel & { firstMs: number }>();

  // ---- scenario injection: one window per enabled scenario, spread over the run ----
  const enabled = options.scenarios.map((name) => {
    const def = getScenario(name);
    if (!def) throw new RangeError(`unknown scenario "${name}"`);
    return def;
  });
  const ctx: ScenarioContext = {
    rng,
    ids,
    freshUser: () => deriveUser(runKey, nextFreshUser++, { scenario: true }),
    merchant: () => weighted(rng, merchantWeights),
  };
  enabled.forEach((def, k) => {
    const window = durationMs / enabled.length;
    const atMs = Math.floor(window * k + window * 0.1);
    const spanMs = Math.min(def.naturalSpanMs, Math.max(200, Math.floor(window * 0.8)));
    const plan = def.plan(ctx, spanMs);
    labelByScenario.set(def.name, {
      scenario: def.name,
      rule_id: def.ruleId,
      entity_type: def.entityType,
      entity_id: plan.entityId,
      first_event_at: '',
      event_ids: [],
      firstMs: Infinity,
    });
    const chains = new Map<string, Chain>();
    for (const step of plan.steps) {
      let chain = chains.get(step.chain);
      if (!chain) chains.set(step.chain, (chain = { lastAtMs: -Infinity }));
      queue.push({ dueAtMs: atMs + step.offsetMs, seq: seq++, draft: step.draft, backdateMs: step.backdateMs, chain, scenario: def.name });
    }
  });

  // ---- baseline users, with a per-IP attempt budget so no benign IP looks like probing ----
  function ipLoad(ip: string, fromMs: number): { at: number; failed: boolean }[] {
    const list = (ipAttempts.get(ip) ?? []).filter((a) => a.at > fromMs);
    ipAttempts.set(ip, list);
    return list;
  }

  /**
   * Picks who places an order whose attempts are already planned. Counting every attempt
   * in the window before the first one (future ones included) bounds every 10-minute
   * window, so no benign IP or device can ever look like probing or a failure spike.
   */
  function pickUser(planned: AttemptPlan[]): User {
    const t = planned[0]!.startAt;
    const failures = planned.filter((a) => a.outcome !== 'ok').length;
    if (t - lastSweepMs > IP_WINDOW_MS) {
      // Forget addresses idle for a whole window so long runs keep memory flat.
      for (const [ip, list] of ipAttempts) if (list.every((a) => a.at <= t - IP_WINDOW_MS)) ipAttempts.delete(ip);
      lastSweepMs = t;
    }
    const fits = (candidate: User) => {
      const load = ipLoad(candidate.ip, t - IP_WINDOW_MS);
      return load.length + planned.length <= BASELINE_MAX_ATTEMPTS_PER_IP && load.filter((a) => a.failed).length + failures <= BASELINE_MAX_FAILURES_PER_IP;
    };
    let user: User | undefined;
    for (let tries = 0; tries < 6 && !user; tries++) {
      const candidate = deriveUser(runKey, int(rng, 0, poolSize - 1));
      if (fits(candidate)) user = candidate;
    }
    // Everyone drawn is busy: a first-time customer takes the order instead.
    for (let tries = 0; tries < 20 && !user; tries++) {
      const candidate = deriveUser(runKey, nextFreshUser++);
      if (fits(candidate)) user = candidate;
    }
    user ??= deriveUser(runKey, nextFreshUser++);
    ipLoad(user.ip, t - IP_WINDOW_MS).push(...planned.map((a) => ({ at: a.startAt, failed: a.outcome !== 'ok' })));
    return user;
  }

  function planAttempts(t: number): { attempts: AttemptPlan[]; refundAt?: number } {
    const attempts: AttemptPlan[] = [];
    let startAt = t;
    for (let k = 1; k <= 3; k++) {
      const successP = k === 1 ? 0.9 : k === 2 ? 0.75 : 0.7;
      const outcome: OutcomeClass = rng() < successP ? 'ok' : weighted(rng, { transient: 52, cancel: 14, hard: 34 });
      const transientCode = outcome === 'transient' ? weighted(rng, { network_error: 46, timeout: 38, system_error: 16 }) : undefined;
      // A request that never reached the platform cannot be pending there.
      const viaProcessing = transientCode !== 'network_error' && rng() < 0.4;
      let finalAt = startAt;
      let finalSource: AttemptPlan['finalSource'] = transientCode === 'network_error' ? 'client' : 'gateway_callback';
      if (viaProcessing) {
        const r = rng();
        if (transientCode === 'timeout') finalAt = startAt + Math.round(uniform(rng, 15_000, 120_000));
        else if (r < 0.88) finalAt = startAt + Math.round(logUniform(rng, 400, 6_000));
        else if (r < 0.96)
          finalAt = startAt + Math.round(uniform(rng, 60_000, 6 * 60_000)); // late callback
        else {
          // Learned from the 5-minute re-check job instead of a callback.
          const tick = 5 * 60_000;
          finalAt = Math.ceil((startAt + 30_000) / tick) * tick + Math.round(uniform(rng, 1_000, 20_000));
          finalSource = 'status_query';
        }
      }
      attempts.push({ startAt, finalAt, viaProcessing, finalSource, outcome, transientCode });
      if (outcome === 'ok') break;
      const retryP = outcome === 'transient' ? 0.6 : outcome === 'cancel' ? 0.3 : 0.1;
      if (rng() >= retryP) break;
      const retryAt = finalAt + Math.round(logUniform(rng, 20_000, 240_000));
      // A customer who would come back after the run simply does not: only owed final
      // statuses are flushed at the end, which keeps the end burst small.
      if (retryAt >= durationMs) break;
      startAt = retryAt;
    }
    const last = attempts[attempts.length - 1]!;
    let refundAt: number | undefined =
      last.outcome === 'ok' && rng() < REFUND_SHARE ? last.finalAt + Math.round(logUniform(rng, 20_000, 5 * 60_000)) : undefined;
    if (refundAt !== undefined && refundAt >= durationMs) refundAt = undefined;
    return { attempts, refundAt };
  }

  function hardCode(channel: Channel): string {
    if (channel === 'card') return weighted(rng, { card_declined: 45, insufficient_funds: 35, limit_exceeded: 20 });
    if (channel === 'bank_transfer') return weighted(rng, { insufficient_funds: 50, limit_exceeded: 25, invalid_account: 25 });
    return weighted(rng, { insufficient_funds: 65, limit_exceeded: 35 });
  }

  /** Plans a whole new order, queues its follow-ups and returns its first event. */
  function newOrder(t: number): TrafficItem {
    const { attempts, refundAt } = planAttempts(t);
    const user = pickUser(attempts);
    const channel: Channel = rng() < 0.85 ? user.channel : weighted(rng, channelWeights);
    const merchantId = weighted(rng, merchantWeights);
    const amount = orderAmount(rng, channel, normal(rng));
    const currency = currencyFor(rng, channel);
    const orderId = ids.orderId();
    const base = {
      type: 'payment',
      order_id: orderId,
      amount_minor: amount,
      currency,
      channel,
      merchant_id: merchantId,
      user_id: user.userId,
      device_id: user.deviceId,
      ip: user.ip,
    } as const;
    let first: TrafficItem | undefined;
    let paidTx: string | undefined;
    attempts.forEach((a, i) => {
      const chain: Chain = { lastAtMs: -Infinity };
      const hasTx = a.transientCode !== 'network_error' && rng() < 0.96;
      const transaction_id = hasTx ? ids.transactionId(channel) : undefined;
      const final: EventDraft = { ...base, attempt: i + 1, transaction_id, status: 'succeeded', source: a.finalSource };
      if (a.outcome === 'transient') Object.assign(final, { status: a.transientCode === 'timeout' ? 'timeout' : 'failed', failure_code: a.transientCode });
      else if (a.outcome === 'cancel') Object.assign(final, { status: 'failed', failure_code: 'user_cancelled' });
      else if (a.outcome === 'hard') Object.assign(final, { status: 'failed', failure_code: hardCode(channel) });
      else paidTx = transaction_id;
      const steps: EventDraft[] = a.viaProcessing ? [{ ...base, attempt: i + 1, transaction_id, status: 'processing', source: 'client' }, final] : [final];
      steps.forEach((draft, j) => {
        const dueAtMs = j === 0 ? a.startAt : a.finalAt;
        if (i === 0 && j === 0) first = emit({ dueAtMs, seq: seq++, draft, chain }, t);
        else queue.push({ dueAtMs, seq: seq++, draft, chain });
      });
    });
    if (refundAt !== undefined) {
      const paid = attempts.length;
      // A refund is its own event; it carries the paid attempt's serial so it is never
      // mistaken for a second charge.
      const refundAmount = rng() < 0.7 ? amount : Math.max(1, Math.round(amount * uniform(rng, 0.1, 0.9)));
      queue.push({
        dueAtMs: refundAt,
        seq: seq++,
        draft: { ...base, type: 'refund', attempt: paid, transaction_id: paidTx, amount_minor: refundAmount, status: 'succeeded', source: 'gateway_callback' },
      });
    }
    return first!;
  }

  /** Turns a due entry into the message sent at `sendAtMs`. */
  function emit(p: Pending, sendAtMs: number): TrafficItem {
    if (p.redelivery) return { ...p.redelivery, sendAtMs, kind: 'redelivery' };
    const event = toEvent(ids.eventId(), startMs + sendAtMs - (p.backdateMs ?? 0), p.draft!);
    if (p.chain) p.chain.lastAtMs = sendAtMs;
    const item: TrafficItem = { sendAtMs, key: event.order_id, value: Buffer.from(JSON.stringify(event)), kind: 'event', event };
    if (p.scenario) item.scenario = p.scenario;
    else if (rng() < REDELIVERY_SHARE) {
      // At-least-once delivery upstream: the same bytes again a little later.
      queue.push({ dueAtMs: sendAtMs + Math.round(logUniform(rng, 50, 20_000)), seq: seq++, redelivery: item });
    }
    return item;
  }

  /** A malformed message of one of the ways producers actually get it wrong. */
  function invalid(sendAtMs: number): TrafficItem {
    const user = deriveUser(runKey, int(invalidRng, 0, poolSize - 1));
    const orderId = ids.orderId();
    const channel = user.channel;
    const good: Record<string, unknown> = {
      ...toEvent(ids.eventId(), startMs + sendAtMs, {
        type: 'payment',
        status: 'succeeded',
        order_id: orderId,
        attempt: 1,
        transaction_id: ids.transactionId(channel),
        amount_minor: int(invalidRng, 100, 50_000),
        currency: 'CNY',
        channel,
        merchant_id: weighted(invalidRng, merchantWeights),
        user_id: user.userId,
        device_id: user.deviceId,
        ip: user.ip,
        source: 'gateway_callback',
      }),
    };
    const kind = weighted(invalidRng, {
      not_json: 10,
      truncated: 10,
      missing_field: 12,
      bad_timestamp: 12,
      bad_ip: 10,
      amount_out_of_range: 10,
      wrong_type: 12,
      invalid_utf8: 8,
      missing_failure_code: 8,
      not_object: 5,
      oversize: 2,
    });
    let value: Buffer;
    const json = (o: unknown) => Buffer.from(JSON.stringify(o));
    switch (kind) {
      case 'not_json':
        value = Buffer.from(`order=${orderId}&status=SUCCESS&amount=${good.amount_minor}`);
        break;
      case 'truncated':
        value = json(good).subarray(0, 40 + int(invalidRng, 0, 60));
        break;
      case 'missing_field': {
        const field = weighted(invalidRng, { event_id: 1, order_id: 1, amount_minor: 1, occurred_at: 1, currency: 1, attempt: 1 });
        delete good[field];
        value = json(good);
        break;
      }
      case 'bad_timestamp':
        good.occurred_at = weighted(invalidRng, {
          [new Date(startMs + sendAtMs)
            .toISOString()
            .replace('T', ' ')
            .replace(/\.\d+Z$/, '')]: 1, // no offset
          [String(startMs + sendAtMs)]: 1,
          '2026-13-45T25:61:00Z': 1,
          yesterday: 1,
        });
        value = json(good);
        break;
      case 'bad_ip':
        good.ip = weighted(invalidRng, { '999.12.3.4': 1, localhost: 1, '10.0.0': 1, 'fe80::zz': 1 });
        value = json(good);
        break;
      case 'amount_out_of_range':
        good.amount_minor = invalidRng() < 0.5 ? -int(invalidRng, 1, 10_000) : 1e16;
        value = json(good);
        break;
      case 'wrong_type': {
        const variant = int(invalidRng, 0, 3);
        if (variant === 0) good.amount_minor = (Number(good.amount_minor) / 100).toFixed(2);
        else if (variant === 1) good.attempt = '1';
        else if (variant === 2) good.status = 'SUCCESS';
        else good.amount_minor = Number(good.amount_minor) + 0.5;
        value = json(good);
        break;
      }
      case 'invalid_utf8': {
        // Bytes of a legacy-encoded string dropped into otherwise valid JSON.
        const text = JSON.stringify(good);
        const at = text.indexOf('"merchant_id":"') + 15;
        value = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xc3, 0x28, 0xb1]), Buffer.from(text.slice(at))]);
        break;
      }
      case 'missing_failure_code':
        good.status = 'failed';
        value = json(good);
        break;
      case 'not_object':
        value = json([good]);
        break;
      default:
        // A client attaching a whole receipt: well-formed, but over the 64 KiB limit.
        good.receipt = 'x'.repeat(70 * 1024);
        value = json(good);
    }
    return { sendAtMs, key: orderId, value, kind: 'invalid' };
  }

  function produce(): TrafficItem | null {
    while (slot < plannedCount) {
      const t = Math.floor(slot * slotMs);
      slot++;
      if (invalidShare > 0 && invalidRng() < invalidShare) return invalid(t);
      for (let top = queue.peek(); top && top.dueAtMs <= t; top = queue.peek()) {
        queue.pop();
        if (top.chain && top.chain.lastAtMs >= t) {
          // Never two events of one attempt in the same millisecond, never out of order.
          queue.push({ ...top, dueAtMs: top.chain.lastAtMs + 1, seq: seq++ });
          continue;
        }
        return emit(top, t);
      }
      return newOrder(t);
    }
    // The run is over: whatever is still pending (late callbacks, retries, refunds) goes
    // out now, so nothing benign is left processing.
    const top = queue.pop();
    if (!top) return null;
    if (top.chain && top.chain.lastAtMs >= flushAtMs) flushAtMs = top.chain.lastAtMs + 1;
    return emit(top, flushAtMs);
  }

  let lookahead: TrafficItem | null | undefined;
  const generator: TrafficGenerator = {
    options,
    plannedCount,
    next() {
      const item = lookahead !== undefined ? lookahead : produce();
      lookahead = undefined;
      if (item?.scenario && item.event) {
        const label = labelByScenario.get(item.scenario)!;
        label.event_ids.push(item.event.event_id);
        const at = Date.parse(item.event.occurred_at);
        if (at < label.firstMs) {
          label.firstMs = at;
          label.first_event_at = item.event.occurred_at;
        }
      }
      return item;
    },
    peekSendAtMs() {
      if (lookahead === undefined) lookahead = produce();
      return lookahead?.sendAtMs ?? null;
    },
    labels() {
      return {
        seed,
        rate,
        durationMs,
        startedAt: new Date(startMs).toISOString(),
        scenarios: [...labelByScenario.values()]
          .filter((l) => l.event_ids.length > 0)
          .map(({ firstMs: _firstMs, ...label }) => ({ ...label, event_ids: [...label.event_ids] })),
      };
    },
    *[Symbol.iterator]() {
      for (let item = generator.next(); item; item = generator.next()) yield item;
    },
  };
  return generator;
}
