import { createHash } from 'node:crypto';
import type { Case } from '../cases/index.ts';
import { limitFor, type MoneyLimit } from '../config/index.ts';
import type { CommandType } from '../contract/command.ts';
import type { LoadedRule } from '../rules/index.ts';

/**
 * What an automatic rule's case asks of the gateway, decided from the case, the rule and the
 * order's attempts. Pure: the automation loop reads, this decides, the loop writes.
 */

/**
 * The idempotency key of a command: the same command for the same case and attempt always gets
 * the same id, whichever instance issues it and however often. A refund is keyed by the attempt
 * alone: whichever case asks, one attempt is refunded at most once. `round` counts the retries
 * support asked for from the console (0 for the first command).
 */
export function commandIdFor(type: CommandType, parts: { caseId: string; orderId?: string; attempt?: number; entity?: string; round?: number }): string {
  const key =
    type === 'refund'
      ? ['refund', parts.orderId ?? '', String(parts.attempt ?? '')]
      : [type, parts.caseId, parts.orderId ?? '', String(parts.attempt ?? ''), parts.entity ?? '', String(parts.round ?? 0)];
  return 'K' + createHash('sha256').update(key.join('\u0000')).digest('hex').slice(0, 24);
}

/** One attempt of an order as automation sees it (automationQueries.attempts). */
export interface AttemptRow {
  order_id: string;
  attempt: number;
  latest_status: string;
  transaction_id: string;
  amount_minor: number;
  currency: string;
  /** Epoch seconds of its first succeeded report; 0 when it never succeeded. */
  first_succeeded: number;
}

/** A command before it is stamped with its times (automation.ts). */
export interface PlannedCommand {
  command_id: string;
  type: CommandType;
  case_id: string;
  rule_id: string;
  order_id?: string;
  attempt?: number;
  transaction_id?: string;
  amount_minor?: number;
  currency?: string;
  entity_type?: 'ip' | 'device' | 'user';
  entity_id?: string;
  /** block: seconds. */
  ttl?: number;
  reason: string;
}

/** The refund limits in force and what today's automatic refunds have spent per currency. */
export interface RefundSafety {
  enabled: boolean;
  max: MoneyLimit;
  daily: MoneyLimit;
  /** Minor units per currency spent today; planning adds what it plans. */
  spentToday: Map<string, number>;
  /**
   * Ids of refunds already sent (AUTOMATION=on): a pass that finds one again (its predecessor
   * was killed before recording the case) sends it again under its id, without the limits:
   * it was allowed and counted when first sent, and a case handed to support "over the budget"
   * while the refund is on its way would invite a second refund by hand.
   */
  sent?: ReadonlySet<string>;
}

export type Plan =
  /** Send these. */
  | { kind: 'commands'; commands: PlannedCommand[] }
  /** Support handles the case, because... */
  | { kind: 'support'; reason: string };

/** Why a refund may not be automatic, or null when it may (and its amount is then counted as spent). */
export function refundVerdict(amount: number, currency: string, safety: RefundSafety): string | null {
  if (!safety.enabled) return 'automatic refunds are not enabled (AUTOMATION_REFUNDS=off)';
  const max = limitFor(safety.max, currency);
  if (amount > max) return `the refund of ${amount} ${currency} is over the automatic ceiling of ${max} (AUTO_REFUND_MAX_MINOR)`;
  const spent = safety.spentToday.get(currency) ?? 0;
  const budget = limitFor(safety.daily, currency);
  if (spent + amount > budget)
    return (
      `the refund of ${amount} ${currency} would take today's automatic refunds to ${spent + amount}, ` +
      `over the budget of ${budget} (AUTO_REFUND_DAILY_MINOR)`
    );
  return null;
}

const BLOCKABLE = new Set(['ip', 'device', 'user']);

/** The commands for one case of an automatic rule, or why support must handle it. */
export function planCommands(c: Case, rule: Pick<LoadedRule, 'id' | 'command'>, attempts: readonly AttemptRow[], safety: RefundSafety): Plan {
  const command = rule.command;
  if (!command) return { kind: 'support', reason: `rule ${rule.id} is no longer automatic` };
  const base = { case_id: c.case_id, rule_id: rule.id };
  const order = (a: AttemptRow) => ({ order_id: a.order_id, attempt: a.attempt, ...(a.transaction_id ? { transaction_id: a.transaction_id } : {}) });
  switch (command.type) {
    case 'requery_status': {
      const stuck = attempts.filter((a) => a.latest_status === 'processing');
      if (stuck.length === 0) return { kind: 'support', reason: 'no attempt of the order is still processing, so there is nothing to query' };
      return {
        kind: 'commands',
        commands: stuck.map((a) => ({
          ...base,
          ...order(a),
          type: 'requery_status',
          command_id: commandIdFor('requery_status', { caseId: c.case_id, orderId: a.order_id, attempt: a.attempt }),
          reason: `Attempt ${a.attempt} of order ${a.order_id} is still processing: query its status.`,
        })),
      };
    }
    case 'refund': {
      // The first charge is the customer's payment; every later succeeded attempt is an extra charge.
      const charged = attempts.filter((a) => a.first_succeeded > 0).sort((a, b) => a.first_succeeded - b.first_succeeded || a.attempt - b.attempt);
      const extra = charged.slice(1);
      if (extra.length === 0) return { kind: 'support', reason: 'fewer than two attempts of the order succeeded, so no charge is an extra one' };
      const commands: PlannedCommand[] = [];
      const planned = new Map<string, number>();
      for (const a of extra) {
        const commandId = commandIdFor('refund', { caseId: c.case_id, orderId: a.order_id, attempt: a.attempt });
        const sentBefore = safety.sent?.has(commandId) ?? false;
        const trial: RefundSafety = {
          ...safety,
          spentToday: new Map([[a.currency, (safety.spentToday.get(a.currency) ?? 0) + (planned.get(a.currency) ?? 0)]]),
        };
        const refused = sentBefore ? null : refundVerdict(a.amount_minor, a.currency, trial);
        if (refused) return { kind: 'support', reason: refused };
        if (!sentBefore) planned.set(a.currency, (planned.get(a.currency) ?? 0) + a.amount_minor);
        commands.push({
          ...base,
          ...order(a),
          type: 'refund',
          amount_minor: a.amount_minor,
          currency: a.currency,
          command_id: commandId,
          reason: `Order ${a.order_id} was charged more than once: refund attempt ${a.attempt}, the charge after attempt ${charged[0]!.attempt}.`,
        });
      }
      for (const [currency, amount] of planned) safety.spentToday.set(currency, (safety.spentToday.get(currency) ?? 0) + amount);
      return { kind: 'commands', commands };
    }
    case 'retry': {
      const last = [...attempts].sort((a, b) => b.attempt - a.attempt)[0];
      if (!last || last.latest_status !== 'failed') return { kind: 'support', reason: 'the order has no failed last attempt to retry' };
      return {
        kind: 'commands',
        commands: [
          {
            ...base,
            ...order(last),
            type: 'retry',
            command_id: commandIdFor('retry', { caseId: c.case_id, orderId: last.order_id, attempt: last.attempt }),
            reason: `Attempt ${last.attempt} of order ${last.order_id} failed transiently: retry it.`,
          },
        ],
      };
    }
    case 'block': {
      if (!BLOCKABLE.has(c.entity_type)) return { kind: 'support', reason: `a ${c.entity_type} cannot be blocked` };
      const ttl = Math.round((command.ttlMs ?? 3_600_000) / 1000);
      return {
        kind: 'commands',
        commands: [
          {
            ...base,
            type: 'block',
            entity_type: c.entity_type as 'ip' | 'device' | 'user',
            entity_id: c.entity_id,
            ttl,
            command_id: commandIdFor('block', { caseId: c.case_id, entity: `${c.entity_type}:${c.entity_id}` }),
            reason: `${c.title}: block ${c.entity_type} ${c.entity_id} for ${ttl} s.`,
          },
        ],
      };
    }
  }
}
