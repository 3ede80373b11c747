import { PaysentinelError } from '../errors/index.ts';
import { int, logUniform, pick, type Rng, uniform, weighted } from './random.ts';
import { deviceFromRng, hostingIp, type EventDraft, type Ids, type User } from './world.ts';

/**
 * Injectable anomalies. Each one is planned once, at a point of the run, as a list of event
 * drafts with offsets; the generator slots them into the traffic. Every scenario names the
 * rule that should catch it and the entity that rule reports, so detection can be scored.
 */

export type EntityType = 'ip' | 'device' | 'order' | 'user';

/** What a scenario may draw on from the generator. */
export interface ScenarioContext {
  rng: Rng;
  ids: Ids;
  /** A user nobody else in the run is, on an address block the baseline never uses. */
  freshUser(): User;
  merchant(): string;
}

export interface ScenarioStep {
  /** Planned send offset from the injection point, within the span. */
  offsetMs: number;
  draft: EventDraft;
  /** Event time this far before the send time (events that already happened long ago). */
  backdateMs?: number;
  /** Steps of one attempt share a chain, so they are never sent out of order. */
  chain: string;
}

export interface ScenarioPlan {
  entityId: string;
  steps: ScenarioStep[];
}

export interface ScenarioDefinition {
  name: string;
  ruleId: string;
  entityType: EntityType;
  description: string;
  /** How long the pattern takes in real life; shorter runs compress it. */
  naturalSpanMs: number;
  plan(ctx: ScenarioContext, spanMs: number): ScenarioPlan;
}

/** Evenly spread offsets with jitter, sorted, within [0, span]. */
function spread(rng: Rng, count: number, spanMs: number): number[] {
  const step = spanMs / count;
  return Array.from({ length: count }, (_, i) => Math.floor(i * step + rng() * step * 0.8));
}

function baseDraft(user: User, orderId: string, amount: number, merchantId: string, channel: string): EventDraft {
  return {
    type: 'payment',
    status: 'processing',
    order_id: orderId,
    amount_minor: amount,
    currency: 'CNY',
    channel,
    merchant_id: merchantId,
    user_id: user.userId,
    device_id: user.deviceId,
    ip: user.ip,
  };
}

const cardTesting: ScenarioDefinition = {
  name: 'card-testing',
  ruleId: 'ip_amount_probing',
  entityType: 'ip',
  description: 'One hosting IP probes stolen cards: 30-60 small, all-different amounts across several accounts and devices within minutes, mostly declined.',
  naturalSpanMs: 4 * 60_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const ip = hostingIp(rng);
    const count = int(rng, 30, 60);
    // A handful of throwaway accounts on a few emulated devices, all behind the same server.
    const accounts = Array.from({ length: int(rng, 6, 12) }, () => ctx.freshUser());
    const devices = Array.from({ length: int(rng, 3, 6) }, () => deviceFromRng(rng));
    const merchantId = ctx.merchant();
    const used = new Set<number>();
    const steps = spread(rng, count, spanMs).map((offsetMs) => {
      let amount = int(rng, 100, 999);
      while (used.has(amount)) amount = int(rng, 100, 999);
      used.add(amount);
      const user = pick(rng, accounts);
      const orderId = ids.orderId();
      const outcome = weighted(rng, { card_declined: 70, insufficient_funds: 10, invalid_account: 6, succeeded: 14 });
      const draft: EventDraft = {
        ...baseDraft(user, orderId, amount, merchantId, 'card'),
        device_id: pick(rng, devices),
        ip,
        attempt: 1,
        transaction_id: ids.transactionId('card'),
        status: outcome === 'succeeded' ? 'succeeded' : 'failed',
        source: 'gateway_callback',
      };
      if (outcome !== 'succeeded') draft.failure_code = outcome;
      return { offsetMs, draft, chain: `${orderId}#1` };
    });
    return { entityId: ip, steps };
  },
};

const deviceFailureSpike: ScenarioDefinition = {
  name: 'device-failure-spike',
  ruleId: 'device_failure_spike',
  entityType: 'device',
  description:
    'One phone (security app blocking requests) fails 25+ attempts with network_error/system_error across several orders, while every other device is normal.',
  naturalSpanMs: 5 * 60_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    // On mobile data the carrier NAT hands out a few different addresses.
    const ips = [user.ip, ...Array.from({ length: 3 }, () => ctx.freshUser().ip)];
    const count = int(rng, 26, 34);
    const merchantId = ctx.merchant();
    const channel = user.channel === 'bank_transfer' ? 'wechat_pay' : user.channel;
    const steps: ScenarioStep[] = [];
    let orderId = ids.orderId();
    let attempt = 0;
    let amount = int(rng, 20, 400) * 100;
    for (const offsetMs of spread(rng, count, spanMs)) {
      // Four tries per order at most: the user gives up and orders again, never a retry storm.
      if (attempt >= 4) {
        orderId = ids.orderId();
        attempt = 0;
        amount = int(rng, 20, 400) * 100;
      }
      attempt++;
      const fails = rng() < 0.88;
      const code = rng() < 0.6 ? 'network_error' : 'system_error';
      const draft: EventDraft = { ...baseDraft(user, orderId, amount, merchantId, channel), ip: pick(rng, ips), attempt };
      if (!fails) {
        Object.assign(draft, { status: 'succeeded', transaction_id: ids.transactionId(channel), source: 'gateway_callback' });
      } else if (code === 'network_error') {
        // The request never reached the platform: no serial number, reported by our client.
        Object.assign(draft, { status: 'failed', failure_code: code, source: 'client' });
      } else {
        Object.assign(draft, { status: 'failed', failure_code: code, transaction_id: ids.transactionId(channel), source: 'gateway_callback' });
      }
      steps.push({ offsetMs, draft, chain: `${orderId}#${attempt}` });
      if (!fails) attempt = 4;
    }
    return { entityId: user.deviceId, steps };
  },
};

const duplicateCharge: ScenarioDefinition = {
  name: 'duplicate-charge',
  ruleId: 'duplicate_charge',
  entityType: 'order',
  description: 'A user taps "pay" repeatedly and one order is charged two or three times, each with its own transaction id.',
  naturalSpanMs: 8_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    const orderId = ids.orderId();
    const channel = user.channel;
    const amount = int(rng, 30, 900) * 100 - (rng() < 0.5 ? 1 : 0);
    const merchantId = ctx.merchant();
    const charges = rng() < 0.4 ? 3 : 2;
    const steps = spread(rng, charges, spanMs).map((offsetMs, i) => ({
      offsetMs,
      chain: `${orderId}#${i + 1}`,
      draft: {
        ...baseDraft(user, orderId, amount, merchantId, channel),
        attempt: i + 1,
        transaction_id: ids.transactionId(channel),
        status: 'succeeded',
        source: 'gateway_callback',
      } satisfies EventDraft,
    }));
    return { entityId: orderId, steps };
  },
};

const stuckProcessing: ScenarioDefinition = {
  name: 'stuck-processing',
  ruleId: 'stuck_processing',
  entityType: 'order',
  description: 'A bank transfer reported processing 45 minutes ago; the 5-minute re-check still says processing and no final status ever arrives.',
  naturalSpanMs: 2_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    const orderId = ids.orderId();
    const transactionId = ids.transactionId('bank_transfer');
    const draft: EventDraft = {
      ...baseDraft(user, orderId, int(rng, 200, 3000) * 100, ctx.merchant(), 'bank_transfer'),
      attempt: 1,
      transaction_id: transactionId,
    };
    const chain = `${orderId}#1`;
    // Backdated so a detector sees it as stuck (> 30 min) even in a short run.
    return {
      entityId: orderId,
      steps: [
        { offsetMs: 0, chain, backdateMs: 45 * 60_000, draft: { ...draft, source: 'client' } },
        { offsetMs: Math.floor(spanMs / 2), chain, backdateMs: 35 * 60_000, draft: { ...draft, source: 'status_query' } },
      ],
    };
  },
};

const chargedButFailed: ScenarioDefinition = {
  name: 'charged-but-failed',
  ruleId: 'charged_but_failed',
  entityType: 'order',
  description:
    'An attempt is reported as timeout, then later turns out to have succeeded (reconciliation or a late callback): the user was charged while the ' +
    'order said failed.',
  naturalSpanMs: 3 * 60_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    const orderId = ids.orderId();
    const channel = user.channel === 'bank_transfer' ? 'alipay' : user.channel;
    const base: EventDraft = {
      ...baseDraft(user, orderId, int(rng, 50, 2000) * 100, ctx.merchant(), channel),
      attempt: 1,
      transaction_id: ids.transactionId(channel),
    };
    const chain = `${orderId}#1`;
    const lateSource = rng() < 0.5 ? 'reconciliation' : 'gateway_callback';
    return {
      entityId: orderId,
      steps: [
        { offsetMs: 0, chain, draft: { ...base, status: 'processing', source: 'client' } },
        {
          offsetMs: Math.floor(spanMs * uniform(rng, 0.15, 0.3)),
          chain,
          draft: { ...base, status: 'timeout', failure_code: 'timeout', source: 'gateway_callback' },
        },
        { offsetMs: Math.floor(spanMs * uniform(rng, 0.85, 1)), chain, draft: { ...base, status: 'succeeded', source: lateSource } },
      ],
    };
  },
};

const retryStorm: ScenarioDefinition = {
  name: 'retry-storm',
  ruleId: 'retry_storm',
  entityType: 'user',
  description: 'One user resubmits the same order 8-15 times within a minute while the channel keeps failing.',
  naturalSpanMs: 50_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    const orderId = ids.orderId();
    const channel = user.channel;
    const amount = int(rng, 20, 600) * 100;
    const merchantId = ctx.merchant();
    const count = int(rng, 8, 15);
    const lastSucceeds = rng() < 0.5;
    const steps = spread(rng, count, spanMs).map((offsetMs, i) => {
      const draft: EventDraft = { ...baseDraft(user, orderId, amount, merchantId, channel), attempt: i + 1 };
      if (lastSucceeds && i === count - 1) {
        Object.assign(draft, { status: 'succeeded', transaction_id: ids.transactionId(channel), source: 'gateway_callback' });
      } else {
        const code = weighted(rng, { network_error: 50, timeout: 25, system_error: 25 });
        Object.assign(draft, {
          status: code === 'timeout' ? 'timeout' : 'failed',
          failure_code: code,
          source: code === 'network_error' ? 'client' : 'gateway_callback',
        });
        if (code !== 'network_error') draft.transaction_id = ids.transactionId(channel);
      }
      return { offsetMs, draft, chain: `${orderId}#${i + 1}` };
    });
    return { entityId: user.userId, steps };
  },
};

const riskBlocked: ScenarioDefinition = {
  name: 'risk-blocked',
  ruleId: 'risk_review',
  entityType: 'order',
  description: "A payment is intercepted by the platform's risk control (failure_code risk_blocked) and needs a manual ticket.",
  naturalSpanMs: 3_000,
  plan(ctx, spanMs) {
    const { rng, ids } = ctx;
    const user = ctx.freshUser();
    const orderId = ids.orderId();
    const channel = user.channel;
    const base: EventDraft = {
      ...baseDraft(user, orderId, Math.round(logUniform(rng, 80_000, 2_000_000)), ctx.merchant(), channel),
      attempt: 1,
      transaction_id: ids.transactionId(channel),
    };
    const chain = `${orderId}#1`;
    return {
      entityId: orderId,
      steps: [
        { offsetMs: 0, chain, draft: { ...base, status: 'processing', source: 'client' } },
        { offsetMs: Math.floor(spanMs / 2), chain, draft: { ...base, status: 'failed', failure_code: 'risk_blocked', source: 'gateway_callback' } },
      ],
    };
  },
};

/** Every scenario, in the order they are injected when several are enabled. */
export const scenarios: readonly ScenarioDefinition[] = [
  cardTesting,
  deviceFailureSpike,
  duplicateCharge,
  stuckProcessing,
  chargedButFailed,
  retryStorm,
  riskBlocked,
];

export const scenarioNames: readonly string[] = scenarios.map((s) => s.name);

/** Looks a scenario up by name. */
export function getScenario(name: string): ScenarioDefinition | undefined {
  return scenarios.find((s) => s.name === name);
}

/**
 * Turns `--scenario` values (repeatable, comma separated, or `all`) into scenario names in
 * injection order, without duplicates; an unknown name is a usage error listing the valid ones.
 */
export function resolveScenarios(values: readonly string[]): string[] {
  const wanted = new Set<string>();
  for (const raw of values.flatMap((v) => v.split(','))) {
    const name = raw.trim();
    if (name === '') continue;
    if (name === 'all') {
      scenarioNames.forEach((n) => wanted.add(n));
    } else if (getScenario(name)) {
      wanted.add(name);
    } else {
      throw new PaysentinelError('USAGE', `Unknown scenario "${name}". Known: ${scenarioNames.join(', ')}, or all.`);
    }
  }
  return scenarioNames.filter((n) => wanted.has(n));
}
