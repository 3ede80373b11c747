import { parseRfc3339 } from '../contract/validate.ts';
import type { PaymentEvent } from '../contract/index.ts';
import type { BreakKind } from './match.ts';
import type { Period } from './types.ts';

/**
 * The platform's statement for simulated traffic, with one disagreement of each kind injected and
 * labelled, so reconciliation can be scored against ground truth. The platform's view is what it
 * settled: an attempt with a `succeeded` event in the period (the platform never takes a charge
 * back; what we record afterwards is ours), and every succeeded refund in the period.
 */

/** One line the platform would list, in the generic format's terms. */
export interface StatementLineOut {
  transactionId: string;
  orderId: string;
  type: 'payment' | 'refund';
  amountMinor: number;
  currency: string;
  occurredAtMs: number;
  refundId: string;
}

/** Ground truth of one injected break: reconciliation must report exactly these. */
export interface InjectedBreak {
  kind: BreakKind;
  order_id: string;
  transaction_id: string;
  description: string;
}

export interface SimulatedStatement {
  lines: StatementLineOut[];
  injected: InjectedBreak[];
  /** Kinds the traffic or the format gave no way to inject (e.g. currency in Alipay files, which are CNY only). */
  notInjected: { kind: BreakKind; reason: string }[];
}

interface AttemptView {
  orderId: string;
  attempt: number;
  succeededAtMs: number | null;
  transactionId: string;
  amountMinor: number;
  currency: string;
}

/**
 * Builds the statement of `channel` for `period` from the traffic's events (redeliveries count
 * once) and injects one break of every kind on distinct orders. `currencies` false: the format
 * cannot state a currency (Alipay), so no currency_mismatch is injected.
 */
export function simulatedStatement(
  events: readonly PaymentEvent[],
  channel: string,
  period: Period,
  options: { currencies: boolean; inject: boolean },
): SimulatedStatement {
  const seen = new Set<string>();
  const attempts = new Map<string, AttemptView>();
  const byOrder = new Map<string, AttemptView[]>();
  const lines: StatementLineOut[] = [];
  const inPeriod = (ms: number) => ms >= period.fromMs && ms < period.toMs;
  for (const e of events) {
    if (e.channel !== channel || seen.has(e.event_id)) continue;
    seen.add(e.event_id);
    const at = parseRfc3339(e.occurred_at)!;
    if (e.type === 'refund') {
      if (e.status === 'succeeded' && inPeriod(at))
        lines.push({
          transactionId: e.transaction_id ?? `sim-${e.order_id}-${e.attempt ?? 0}`,
          orderId: e.order_id,
          type: 'refund',
          amountMinor: e.amount_minor,
          currency: e.currency,
          occurredAtMs: at,
          refundId: `rf-${e.event_id}`,
        });
      continue;
    }
    const key = `${e.order_id}\u0000${e.attempt ?? 0}`;
    let a = attempts.get(key);
    if (!a) {
      a = { orderId: e.order_id, attempt: e.attempt ?? 0, succeededAtMs: null, transactionId: '', amountMinor: e.amount_minor, currency: e.currency };
      attempts.set(key, a);
      byOrder.set(e.order_id, [...(byOrder.get(e.order_id) ?? []), a]);
    }
    if (e.transaction_id) a.transactionId = e.transaction_id;
    if (e.status === 'succeeded' && (a.succeededAtMs === null || at < a.succeededAtMs)) {
      a.succeededAtMs = at;
      a.amountMinor = e.amount_minor;
      a.currency = e.currency;
    }
  }
  // The platform always has a serial number, also where our records have none.
  const platformTx = (a: AttemptView): string => a.transactionId || `sim-${a.orderId}-${a.attempt}`;
  const paymentLine = (a: AttemptView): StatementLineOut => ({
    transactionId: platformTx(a),
    orderId: a.orderId,
    type: 'payment',
    amountMinor: a.amountMinor,
    currency: a.currency,
    occurredAtMs: a.succeededAtMs!,
    refundId: '',
  });
  for (const a of attempts.values()) if (a.succeededAtMs !== null && inPeriod(a.succeededAtMs)) lines.push(paymentLine(a));
  lines.sort((x, y) => x.occurredAtMs - y.occurredAtMs);
  if (!options.inject) return { lines, injected: [], notInjected: [] };

  const injected: InjectedBreak[] = [];
  const notInjected: SimulatedStatement['notInjected'] = [];
  // Orders already used by an injection, or with a refund (refund lines match by order too).
  const used = new Set(lines.filter((l) => l.type === 'refund').map((l) => l.orderId));
  const orders = [...byOrder.entries()];
  const settledOnce = (list: AttemptView[]) => list.filter((a) => a.succeededAtMs !== null).length === 1;
  // A paid order with one settled attempt, a transaction id, its line in the period and no other use.
  const takePaid = (): { a: AttemptView; index: number } | undefined => {
    for (const [order, list] of orders) {
      if (used.has(order) || !settledOnce(list) || list.length !== 1) continue;
      const a = list[0]!;
      const index = lines.findIndex((l) => l.type === 'payment' && l.orderId === order);
      if (a.transactionId === '' || index < 0) continue;
      used.add(order);
      return { a, index };
    }
    return undefined;
  };
  const label = (kind: BreakKind, a: { orderId: string; transactionId: string }, description: string) =>
    injected.push({ kind, order_id: a.orderId, transaction_id: a.transactionId, description });

  const amount = takePaid();
  if (amount) {
    lines[amount.index] = { ...lines[amount.index]!, amountMinor: amount.a.amountMinor + 1 };
    label('amount_mismatch', amount.a, 'the statement amount is one minor unit more than ours');
  } else notInjected.push({ kind: 'amount_mismatch', reason: 'no paid order to alter' });

  const currency = options.currencies ? takePaid() : undefined;
  if (currency) {
    lines[currency.index] = { ...lines[currency.index]!, currency: currency.a.currency === 'USD' ? 'EUR' : 'USD' };
    label('currency_mismatch', currency.a, 'the statement currency differs from ours');
  } else notInjected.push({ kind: 'currency_mismatch', reason: options.currencies ? 'no paid order to alter' : 'the format has no currency column' });

  const duplicate = takePaid();
  if (duplicate) {
    lines.push({ ...lines[duplicate.index]!, occurredAtMs: Math.min(lines[duplicate.index]!.occurredAtMs + 1000, period.toMs - 1) });
    label('duplicate_settlement', duplicate.a, 'the statement settles the same charge twice');
  } else notInjected.push({ kind: 'duplicate_settlement', reason: 'no paid order to duplicate' });

  const dropped = takePaid();
  if (dropped) {
    lines.splice(dropped.index, 1);
    label('recorded_not_settled', dropped.a, 'the statement omits a charge we recorded as succeeded');
  } else notInjected.push({ kind: 'recorded_not_settled', reason: 'no paid order to omit' });

  // A charge on an order none of whose attempts succeeded (a single failed or timed-out attempt).
  const unpaid = orders.find(([order, list]) => !used.has(order) && list.length === 1 && list[0]!.succeededAtMs === null);
  const charged = unpaid?.[1][0];
  if (charged) {
    used.add(charged.orderId);
    lines.push({
      transactionId: platformTx(charged),
      orderId: charged.orderId,
      type: 'payment',
      amountMinor: charged.amountMinor,
      currency: charged.currency,
      occurredAtMs: period.fromMs + Math.floor((period.toMs - period.fromMs) / 2),
      refundId: '',
    });
    label('charged_not_recorded', charged, 'the platform charged an attempt we recorded as not succeeded');
  } else notInjected.push({ kind: 'charged_not_recorded', reason: 'no unpaid order in the traffic' });

  const refunded = takePaid();
  if (refunded) {
    const l = lines.find((x) => x.type === 'payment' && x.orderId === refunded.a.orderId)!;
    lines.push({
      ...l,
      type: 'refund',
      amountMinor: Math.max(1, Math.floor(l.amountMinor / 2)),
      occurredAtMs: Math.min(l.occurredAtMs + 60_000, period.toMs - 1),
      refundId: `rf-injected-${l.orderId}`,
    });
    label('refund_mismatch', refunded.a, 'the statement refunds an order we recorded no refund for');
  } else notInjected.push({ kind: 'refund_mismatch', reason: 'no paid order to refund' });

  // Two attempts of one order with the same amount, neither succeeded: a charge whose serial number we never recorded fits both.
  const twin = orders.find(
    ([order, list]) =>
      !used.has(order) &&
      list.length >= 2 &&
      list.every((a) => a.succeededAtMs === null) &&
      list.filter((a) => a.amountMinor === list[0]!.amountMinor && a.currency === list[0]!.currency).length >= 2,
  );
  if (twin) {
    const a = twin[1][0]!;
    used.add(a.orderId);
    lines.push({
      transactionId: `sim-${a.orderId}-unknown`,
      orderId: a.orderId,
      type: 'payment',
      amountMinor: a.amountMinor,
      currency: a.currency,
      occurredAtMs: period.fromMs + Math.floor((period.toMs - period.fromMs) / 3),
      refundId: '',
    });
    label(
      'ambiguous',
      { orderId: a.orderId, transactionId: `sim-${a.orderId}-unknown` },
      "a charge with a serial number we never recorded that two of the order's attempts fit equally",
    );
  } else notInjected.push({ kind: 'ambiguous', reason: 'no order with two unsettled attempts of one amount' });

  lines.sort((x, y) => x.occurredAtMs - y.occurredAtMs);
  return { lines, injected, notInjected };
}
