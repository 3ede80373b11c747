import { isUtf8 } from 'node:buffer';
import { describe, expect, test } from 'vitest';
import { decodeEvent, validateEvent, type PaymentEvent } from '../contract/index.ts';
import { BASELINE_MAX_ATTEMPTS_PER_IP, createTrafficGenerator, type GeneratorOptions, type TrafficItem } from './generate.ts';
import { resolveScenarios, scenarioNames } from './scenarios.ts';

const START = Date.UTC(2026, 10, 25, 10, 0, 0);
const MIN = 60_000;

function generate(options: Partial<GeneratorOptions> = {}) {
  const generator = createTrafficGenerator({ seed: 42, rate: 200, durationMs: 10_000, startMs: START, ...options });
  const items = [...generator];
  return { generator, items, labels: generator.labels() };
}

const eventsOf = (items: TrafficItem[]) => items.filter((i) => i.kind === 'event').map((i) => i.event!);
const ms = (e: PaymentEvent) => Date.parse(e.occurred_at);
const attemptKey = (e: PaymentEvent) => `${e.order_id}#${e.attempt}`;
const isFinal = (e: PaymentEvent) => e.status !== 'processing';

function groupBy<T>(items: T[], key: (t: T) => string | undefined): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === undefined) continue;
    const list = out.get(k) ?? [];
    list.push(item);
    out.set(k, list);
  }
  return out;
}

/** Largest number of items whose times fall in one window of `windowMs`. */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! >= windowMs) i++;
    best = Math.max(best, j - i + 1);
  }
  return best;
}

describe('determinism', () => {
  test('the same seed gives a byte-identical stream, a different seed a different one', () => {
    const opts = { scenarios: scenarioNames, invalidShare: 0.05 };
    const a = generate(opts).items;
    const b = generate(opts).items;
    const c = generate({ ...opts, seed: 43 }).items;
    expect(a.length).toBeGreaterThan(1000);
    expect(b.length).toBe(a.length);
    const differing = a.filter((item, i) => b[i]!.sendAtMs !== item.sendAtMs || b[i]!.key !== item.key || !b[i]!.value.equals(item.value));
    expect(differing).toEqual([]);
    const same = c.slice(0, 200).filter((item, i) => a[i] && a[i]!.value.equals(item.value)).length;
    expect(same).toBe(0);
  });

  test('runs of the same seed started at different times do not reuse event or order ids', () => {
    const a = eventsOf(generate().items);
    const b = eventsOf(generate({ startMs: START + 1000 }).items);
    const idsA = new Set(a.map((e) => e.event_id));
    const ordersA = new Set(a.map((e) => e.order_id));
    expect(b.some((e) => idsA.has(e.event_id))).toBe(false);
    expect(b.some((e) => ordersA.has(e.order_id))).toBe(false);
  });
});

describe('message validity', () => {
  const { items } = generate({ rate: 400, durationMs: 30_000, invalidShare: 0.15, scenarios: resolveScenarios(['all']) });

  test('every event and redelivery passes the contract, every invalid message is rejected', () => {
    const wrong: string[] = [];
    for (const item of items) {
      const decoded = decodeEvent(item.value, 65536);
      if (item.kind === 'invalid') {
        if (decoded.ok) wrong.push(`accepted invalid: ${item.value.toString('latin1').slice(0, 200)}`);
      } else {
        const checked = validateEvent(JSON.parse(item.value.toString('utf8')));
        if (!checked.ok) wrong.push(`${checked.reason}: ${item.value}`);
        if (!decoded.ok || item.key !== item.event!.order_id) wrong.push(`bad message or key: ${item.key} ${item.value}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(items.filter((i) => i.kind === 'event').length).toBeGreaterThan(10_000);
  });

  test('malformed messages break the contract in many different ways, including oversize ones', () => {
    const invalid = items.filter((i) => i.kind === 'invalid');
    const share = invalid.length / items.length;
    expect(share).toBeGreaterThan(0.12);
    expect(share).toBeLessThan(0.18);
    // Reduce each rejection reason to its kind (strip the values it quotes).
    const reasons = new Set(
      invalid.map((i) => {
        const r = decodeEvent(i.value, 65536);
        return r.ok
          ? 'ok'
          : r.reason
              .replace(/"[^"]*"/g, '')
              .replace(/\d+/g, 'N')
              .slice(0, 30);
      }),
    );
    expect(reasons.size).toBeGreaterThanOrEqual(8);
    expect(invalid.some((i) => i.value.length > 65536 && i.value.length < 80_000)).toBe(true);
    expect(invalid.some((i) => !isUtf8(i.value))).toBe(true);
  });

  test('every event has its own id; redeliveries repeat an earlier event byte for byte under the same key', () => {
    const { items: baseline } = generate({ rate: 300, durationMs: 3 * MIN });
    const events = baseline.filter((i) => i.kind === 'event');
    expect(new Set(events.map((i) => i.event!.event_id)).size).toBe(events.length);
    const seen = new Map<string, TrafficItem>();
    const redeliveries = baseline.filter((i) => i.kind === 'redelivery');
    const orphans: TrafficItem[] = [];
    for (const item of baseline) {
      if (item.kind === 'event') seen.set(item.event!.event_id, item);
      if (item.kind === 'redelivery') {
        const original = seen.get(item.event!.event_id);
        if (!original || !item.value.equals(original.value) || item.key !== original.key) orphans.push(item);
      }
    }
    expect(orphans).toEqual([]);
    const share = redeliveries.length / events.length;
    expect(share).toBeGreaterThan(0.002);
    expect(share).toBeLessThan(0.01);
  }, 30_000); // 54,000 events validated and compared: a few seconds on a quiet machine, more on a loaded one
});

describe('baseline traffic looks like ordinary business, never like an attack', () => {
  const durationMs = 5 * MIN;
  const { items } = generate({ seed: 9, rate: 250, durationMs });
  const events = eventsOf(items);
  const payments = events.filter((e) => e.type === 'payment');
  const attempts = groupBy(payments, attemptKey);

  test('no IP makes more than a handful of attempts, or tries many amounts, in 10 minutes', () => {
    const byIp = groupBy(payments, (e) => e.ip);
    let maxAttempts = 0;
    let maxAmounts = 0;
    for (const list of byIp.values()) {
      const firstOfAttempt = [...groupBy(list, attemptKey).values()].map((l) => ms(l[0]!));
      maxAttempts = Math.max(maxAttempts, maxInWindow(firstOfAttempt, 10 * MIN));
      maxAmounts = Math.max(maxAmounts, new Set(list.map((e) => e.amount_minor)).size);
    }
    expect(maxAttempts).toBeLessThanOrEqual(BASELINE_MAX_ATTEMPTS_PER_IP);
    expect(maxAmounts).toBeLessThanOrEqual(BASELINE_MAX_ATTEMPTS_PER_IP);
    // Shared NAT addresses exist, lightly.
    expect([...byIp.values()].some((l) => new Set(l.map((e) => e.user_id)).size > 1)).toBe(true);
  });

  test('no device has a failure spike', () => {
    const failures = payments.filter((e) => e.status === 'failed' || e.status === 'timeout');
    const perDevice = [...groupBy(failures, (e) => e.device_id).values()].map((l) => maxInWindow(l.map(ms), 10 * MIN));
    expect(Math.max(...perDevice)).toBeLessThanOrEqual(3);
  });

  test('no order is charged twice, no failed attempt later succeeds, nothing stays processing, no risk block', () => {
    const problems: string[] = [];
    for (const [order, list] of groupBy(payments, (e) => e.order_id)) {
      const succeeded = new Set(list.filter((e) => e.status === 'succeeded').map((e) => e.attempt));
      if (succeeded.size > 1) problems.push(`${order} charged ${succeeded.size} times`);
    }
    for (const [key, list] of attempts) {
      const statuses = list.map((e) => e.status);
      if (statuses.includes('processing') && !list.some(isFinal)) problems.push(`${key} left processing`);
      if ((statuses.includes('failed') || statuses.includes('timeout')) && statuses.includes('succeeded')) problems.push(`${key} failed then succeeded`);
      if (list.filter(isFinal).length > 1) problems.push(`${key} has several final statuses`);
    }
    expect(problems).toEqual([]);
    expect(attempts.size).toBeGreaterThan(30_000);
    expect(events.some((e) => e.failure_code === 'risk_blocked')).toBe(false);
  });

  test('no user hammers one order: at most three attempts, tens of seconds apart', () => {
    const hammered: string[] = [];
    for (const [key, list] of groupBy(payments, (e) => `${e.user_id}/${e.order_id}`)) {
      const starts = [...groupBy(list, attemptKey).values()].map((l) => ms(l[0]!));
      if (starts.length > 3 || maxInWindow(starts, 15_000) > 1) hammered.push(key);
    }
    expect(hammered).toEqual([]);
  });

  test('realistic mix: ~90% first-attempt success, retries, late callbacks, status queries, refunds', () => {
    const firstFinals = payments.filter((e) => e.attempt === 1 && isFinal(e));
    const success = firstFinals.filter((e) => e.status === 'succeeded').length / firstFinals.length;
    expect(success).toBeGreaterThan(0.88);
    expect(success).toBeLessThan(0.92);
    const codes = new Set(payments.map((e) => e.failure_code).filter(Boolean));
    for (const code of ['network_error', 'timeout', 'card_declined', 'insufficient_funds', 'system_error', 'limit_exceeded', 'user_cancelled']) {
      expect(codes).toContain(code);
    }
    expect(payments.filter((e) => e.status === 'timeout').every((e) => e.failure_code === 'timeout')).toBe(true);
    // Retries: later attempts of a failed order, some of which succeed.
    const retries = payments.filter((e) => (e.attempt ?? 1) > 1 && isFinal(e));
    expect(retries.length).toBeGreaterThan(20);
    expect(retries.some((e) => e.status === 'succeeded')).toBe(true);
    // Callback delays: most within seconds, some minutes late, all well under 30 minutes.
    const delays: number[] = [];
    for (const list of attempts.values()) {
      const p = list.find((e) => e.status === 'processing');
      const f = list.find(isFinal);
      if (p && f) delays.push(ms(f) - ms(p));
    }
    expect(delays.length).toBeGreaterThan(1000);
    expect(delays.filter((d) => d <= 10_000).length / delays.length).toBeGreaterThan(0.75);
    expect(delays.some((d) => d > 60_000)).toBe(true);
    expect(Math.max(...delays)).toBeLessThan(15 * MIN);
    expect(Math.min(...delays)).toBeGreaterThan(0);
    expect(payments.some((e) => e.source === 'status_query')).toBe(true);
    // Refunds: own event, succeeded, from the gateway, on an order that was paid.
    const refunds = events.filter((e) => e.type === 'refund');
    const paidOrders = new Set(payments.filter((e) => e.status === 'succeeded').map((e) => e.order_id));
    expect(refunds.length / paidOrders.size).toBeGreaterThan(0.005);
    expect(refunds.length / paidOrders.size).toBeLessThan(0.03);
    for (const r of refunds) {
      expect(r).toMatchObject({ status: 'succeeded', source: 'gateway_callback' });
      expect(paidOrders.has(r.order_id)).toBe(true);
    }
    expect(payments.filter((e) => e.transaction_id).length / payments.length).toBeGreaterThan(0.85);
  });

  test('channels, merchants, users and currencies look like a real platform', () => {
    const channels = groupBy(payments, (e) => e.channel);
    expect([...channels.keys()].sort()).toEqual(['alipay', 'bank_transfer', 'card', 'wechat_pay']);
    expect(channels.get('alipay')!.length).toBeGreaterThan(channels.get('card')!.length);
    expect(new Set(payments.map((e) => e.merchant_id)).size).toBeGreaterThanOrEqual(18);
    expect(new Set(payments.map((e) => e.user_id)).size).toBeGreaterThan(5000);
    expect(payments.filter((e) => e.currency === 'CNY').length / payments.length).toBeGreaterThan(0.9);
    const amounts = payments.map((e) => e.amount_minor).sort((a, b) => a - b);
    const median = amounts[Math.floor(amounts.length / 2)]!;
    expect(median).toBeGreaterThan(3000);
    expect(median).toBeLessThan(20_000);
    expect(amounts[amounts.length - 1]!).toBeGreaterThan(100_000);
  });

  test('pacing: send times never go backwards, the count matches rate × duration, no event is from the future', () => {
    expect(items.filter((item, i) => i > 0 && item.sendAtMs < items[i - 1]!.sendAtMs)).toEqual([]);
    const planned = 250 * 5 * 60;
    expect(items.filter((i) => i.sendAtMs < durationMs).length).toBe(planned);
    expect(items.length).toBeLessThan(planned * 1.03);
    expect(items[items.length - 1]!.sendAtMs).toBe(durationMs);
    // Roughly even: every second carries about `rate` messages.
    const perSecond = groupBy(
      items.filter((i) => i.sendAtMs < durationMs),
      (i) => String(Math.floor(i.sendAtMs / 1000)),
    );
    expect(new Set([...perSecond.values()].map((l) => l.length))).toEqual(new Set([250]));
    expect(items.filter((item) => item.event && ms(item.event) > START + item.sendAtMs)).toEqual([]);
  });
});

describe('scenarios', () => {
  /** One scenario alone in a run long enough for its natural span. */
  function inject(name: string, durationMs = 6 * MIN) {
    const { items, labels } = generate({ seed: 5, rate: 40, durationMs, scenarios: [name] });
    const label = labels.scenarios.find((l) => l.scenario === name)!;
    const tagged = items.filter((i) => i.scenario === name && i.kind === 'event').map((i) => i.event!);
    return { items, label, labels, tagged, events: eventsOf(items) };
  }

  test('labels list exactly the scenario events, with rule, entity and first event time', () => {
    for (const name of scenarioNames) {
      const { label, tagged, labels } = inject(name, 2 * MIN);
      expect(labels).toMatchObject({ seed: 5, rate: 40, durationMs: 2 * MIN, startedAt: new Date(START).toISOString() });
      expect(label.rule_id).toMatch(/^[a-z_]+$/);
      expect([...label.event_ids].sort()).toEqual(tagged.map((e) => e.event_id).sort());
      expect(label.first_event_at).toBe(tagged.map((e) => e.occurred_at).sort()[0]);
      expect(`${label.entity_id} ${tagged.map((e) => `${e.order_id} ${e.user_id}`).join(' ')}`).not.toMatch(/attack|fraud|test/i);
    }
  });

  test('card-testing: one IP, many distinct small amounts across accounts and devices within 10 minutes, mostly declined', () => {
    const { label, tagged, events } = inject('card-testing');
    expect(label).toMatchObject({ rule_id: 'ip_amount_probing', entity_type: 'ip' });
    const fromIp = events.filter((e) => e.ip === label.entity_id);
    expect(fromIp.map((e) => e.event_id).sort()).toEqual(tagged.map((e) => e.event_id).sort());
    expect(fromIp.length).toBeGreaterThanOrEqual(30);
    expect(fromIp.length).toBeLessThanOrEqual(60);
    expect(new Set(fromIp.map((e) => e.amount_minor)).size).toBe(fromIp.length);
    expect(Math.max(...fromIp.map((e) => e.amount_minor))).toBeLessThan(1000);
    expect(maxInWindow(fromIp.map(ms), 10 * MIN)).toBe(fromIp.length);
    expect(new Set(fromIp.map((e) => e.user_id)).size).toBeGreaterThanOrEqual(5);
    expect(new Set(fromIp.map((e) => e.device_id)).size).toBeGreaterThanOrEqual(3);
    expect(fromIp.filter((e) => e.status === 'failed').length / fromIp.length).toBeGreaterThan(0.6);
  });

  test('device-failure-spike: one device fails 25+ times while other devices stay normal', () => {
    const { label, tagged, events } = inject('device-failure-spike');
    expect(label).toMatchObject({ rule_id: 'device_failure_spike', entity_type: 'device' });
    expect(tagged.every((e) => e.device_id === label.entity_id)).toBe(true);
    const failures = events.filter((e) => e.status === 'failed' || e.status === 'timeout');
    const onDevice = failures.filter((e) => e.device_id === label.entity_id);
    expect(onDevice.length).toBeGreaterThanOrEqual(20);
    expect(onDevice.every((e) => e.failure_code === 'network_error' || e.failure_code === 'system_error')).toBe(true);
    expect(tagged.length).toBeGreaterThanOrEqual(25);
    const others = [
      ...groupBy(
        failures.filter((e) => e.device_id !== label.entity_id),
        (e) => e.device_id,
      ).values(),
    ];
    expect(Math.max(...others.map((l) => l.length))).toBeLessThanOrEqual(3);
    // Not a retry storm in disguise: at most four attempts per order.
    for (const list of groupBy(tagged, (e) => e.order_id).values()) expect(list.length).toBeLessThanOrEqual(4);
  });

  test('duplicate-charge: one order with two or more succeeded attempts, distinct transaction ids', () => {
    const { label, events } = inject('duplicate-charge');
    expect(label).toMatchObject({ rule_id: 'duplicate_charge', entity_type: 'order' });
    const paid = events.filter((e) => e.order_id === label.entity_id && e.type === 'payment' && e.status === 'succeeded');
    expect(paid.length).toBeGreaterThanOrEqual(2);
    expect(new Set(paid.map((e) => e.attempt)).size).toBe(paid.length);
    expect(new Set(paid.map((e) => e.transaction_id)).size).toBe(paid.length);
  });

  test('stuck-processing: the order only ever says processing, with event times over 30 minutes old when sent', () => {
    const { label, items } = inject('stuck-processing', 30_000);
    expect(label).toMatchObject({ rule_id: 'stuck_processing', entity_type: 'order' });
    const sent = items.filter((i) => i.event?.order_id === label.entity_id);
    expect(sent.length).toBeGreaterThanOrEqual(1);
    for (const item of sent) {
      expect(item.event!.status).toBe('processing');
      expect(START + item.sendAtMs - ms(item.event!)).toBeGreaterThan(30 * MIN);
    }
  });

  test('charged-but-failed: an attempt reported timeout or failed is later reported succeeded', () => {
    const { label, events } = inject('charged-but-failed', 20_000);
    expect(label).toMatchObject({ rule_id: 'charged_but_failed', entity_type: 'order' });
    const list = events.filter((e) => e.order_id === label.entity_id).sort((a, b) => ms(a) - ms(b));
    const failedAt = list.findIndex((e) => e.status === 'timeout' || e.status === 'failed');
    const late = list.slice(failedAt + 1).find((e) => e.status === 'succeeded');
    expect(failedAt).toBeGreaterThanOrEqual(0);
    expect(late).toBeDefined();
    expect(late!.attempt).toBe(list[failedAt]!.attempt);
    expect(['reconciliation', 'gateway_callback']).toContain(late!.source);
  });

  test('retry-storm: one user submits the same order 8-15 times within a minute', () => {
    const { label, events } = inject('retry-storm');
    expect(label).toMatchObject({ rule_id: 'retry_storm', entity_type: 'user' });
    const mine = events.filter((e) => e.user_id === label.entity_id);
    const orders = groupBy(mine, (e) => e.order_id);
    expect(orders.size).toBe(1);
    const list = [...orders.values()][0]!;
    expect(new Set(list.map((e) => e.attempt)).size).toBeGreaterThanOrEqual(8);
    expect(list.length).toBeLessThanOrEqual(15);
    expect(maxInWindow(list.map(ms), MIN)).toBe(list.length);
  });

  test('risk-blocked: a payment fails with risk_blocked, and only in this scenario', () => {
    const { label, events } = inject('risk-blocked');
    expect(label).toMatchObject({ rule_id: 'risk_review', entity_type: 'order' });
    const blocked = events.filter((e) => e.failure_code === 'risk_blocked');
    expect(blocked.map((e) => e.order_id)).toEqual([label.entity_id]);
    expect(blocked[0]!.status).toBe('failed');
  });

  test('all scenarios in a short run are spread across it and each gets labelled', () => {
    const { items, labels } = generate({ seed: 7, rate: 500, durationMs: 10_000, scenarios: resolveScenarios(['all']) });
    expect(labels.scenarios.map((l) => l.scenario)).toEqual(scenarioNames);
    const firstSend = scenarioNames.map((n) => items.find((i) => i.scenario === n)!.sendAtMs);
    for (let k = 1; k < firstSend.length; k++) expect(firstSend[k]!).toBeGreaterThan(firstSend[k - 1]!);
    expect(firstSend[0]!).toBeLessThan(2000);
    expect(firstSend[firstSend.length - 1]!).toBeGreaterThan(7000);
  });

  test('--scenario values: all, comma lists, repeats; unknown names are a usage error', () => {
    expect(resolveScenarios(['all'])).toEqual(scenarioNames);
    expect(resolveScenarios(['retry-storm,card-testing', 'card-testing'])).toEqual(['card-testing', 'retry-storm']);
    expect(resolveScenarios([])).toEqual([]);
    expect(() => resolveScenarios(['card-testin'])).toThrow(/Unknown scenario "card-testin"[\s\S]*card-testing/);
  });
});
