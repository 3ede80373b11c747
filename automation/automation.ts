import type { Producer } from 'kafkajs';
import { caseQueries, type Case, type CaseStore } from '../cases/index.ts';
import type { AutomationMode, Config } from '../config/index.ts';
import type { PaymentCommand } from '../contract/command.ts';
import type { Logger } from '../log/index.ts';
import type { LoadedRule, RuleSet } from '../rules/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { commandIdFor, planCommands, type AttemptRow, type PlannedCommand, type RefundSafety } from './plan.ts';
import { AUTOMATION_ACTOR, automationQueries, commandVersionRow, issuedCommandRow, type CommandVersionRow, type StoredCommand } from './queries.ts';

export type { StoredCommand } from './queries.ts';

/**
 * The automation loop, run by the detection leader every few seconds. All its state is in
 * ClickHouse (cases, commands), so a restart, a SIGKILL or a new leader carries on from what is
 * stored:
 * 1. Cases of automatic rules automation has not looked at get their commands (plan.ts): each
 *    is stored first, then published (AUTOMATION=on) or only recorded (dry-run); then the case
 *    records who handles it. A pass killed between the two finds the case again and re-sends the
 *    stored commands under the same ids, which the gateway carries out once.
 * 2. Published commands get their outcome from the events (a status-query answer, a refund event)
 *    or from the results topic (results.ts); a rejected, failed or expired command sends its case
 *    to support at once, with the command as evidence.
 */

/** Who handles a case automation has taken: support's inbox filters it out as assigned. */
export const AUTOMATION_ASSIGNEE = 'automation';

/** Whether automation runs: the AUTOMATION setting, and the kill switch read on every pass. */
export interface AutomationSwitch {
  paused: boolean;
  changedBy: string;
  note: string;
}

export interface AutomationDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  config: Pick<Config, 'automation' | 'automationRefunds' | 'autoRefundMaxMinor' | 'autoRefundDailyMinor' | 'commandsTopic'>;
  cases: Pick<CaseStore, 'get' | 'record'>;
  /** The rule set in force (hot reload replaces it). */
  ruleSet: () => RuleSet;
  logger: Logger;
  now?: () => number;
}

/** Cases taken and commands looked at per pass; the rest wait for the next pass. */
const CASES_PER_PASS = 500;
const OUTSTANDING_PER_PASS = 2_000;

const epochMs = (dateTime: string) => Date.parse(dateTime.replace(' ', 'T') + 'Z');
const iso = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** The message published for a command: the contract's fields only. */
export function commandMessage(p: PlannedCommand, issuedAtMs: number, expiresAtMs: number): PaymentCommand {
  return { ...p, issued_at: iso(issuedAtMs), expires_at: iso(expiresAtMs) };
}

/** Reads the kill switch (no row: running). */
export async function readSwitch(clickhouse: ClickHouseClient, database: string): Promise<AutomationSwitch> {
  const [row] = await queryRows<{ state: string; changed_by: string; note: string }>(
    clickhouse,
    automationQueries(database).switchState(),
    'automation switch',
  );
  return { paused: row?.state === 'paused', changedBy: row?.changed_by ?? '', note: row?.note ?? '' };
}

/** Sets the kill switch; every instance's next pass sees it. */
export async function writeSwitch(clickhouse: ClickHouseClient, database: string, paused: boolean, who: string, note: string, nowMs: number): Promise<void> {
  await insertRows(clickhouse, ident(database, 'automation_switch').text, [{ version: nowMs, state: paused ? 'paused' : 'running', changed_by: who, note }]);
}

/** A one-line account of a command for case notes and `cases show`. */
export function describeCommand(
  c: Pick<StoredCommand, 'type' | 'command_id' | 'order_id' | 'attempt' | 'entity_type' | 'entity_id' | 'amount_minor' | 'currency'>,
): string {
  const target =
    c.type === 'block'
      ? `${c.entity_type} ${c.entity_id}`
      : `order ${c.order_id} attempt ${c.attempt}${c.type === 'refund' ? ` (${Number(c.amount_minor)} ${c.currency})` : ''}`;
  return `${c.type} ${c.command_id} for ${target}`;
}

export function createAutomation(deps: AutomationDeps) {
  const q = automationQueries(deps.database);
  const versions = ident(deps.database, 'command_versions').text;
  const now = deps.now ?? Date.now;

  async function storeVersions(rows: readonly CommandVersionRow[]): Promise<void> {
    await insertRows(deps.clickhouse, versions, rows);
  }

  async function publish(messages: readonly PaymentCommand[]): Promise<void> {
    if (messages.length === 0) return;
    await deps.producer.send({
      topic: deps.config.commandsTopic,
      acks: -1,
      messages: messages.map((m) => ({ key: m.order_id ?? m.entity_id ?? m.command_id, value: JSON.stringify(m) })),
    });
  }

  /** Gives a case to support (assignee cleared) with why, and what automation did, as evidence. */
  async function toSupport(c: Case, note: string, nowMs: number, evidence?: Record<string, unknown>): Promise<void> {
    const next: Case = {
      ...c,
      assignee: c.assignee === AUTOMATION_ASSIGNEE ? '' : c.assignee,
      evidence: evidence ? { ...c.evidence, automation: evidence } : c.evidence,
    };
    await deps.cases.record(next, AUTOMATION_ACTOR, note, nowMs);
  }

  /** Step 1: the cases of automatic rules automation has not looked at yet. */
  async function takeCases(mode: AutomationMode, sw: AutomationSwitch, nowMs: number): Promise<number> {
    const rules = new Map<string, LoadedRule>(
      deps
        .ruleSet()
        .rules.filter((r) => r.enabled && r.action === 'automatic')
        .map((r) => [r.id, r]),
    );
    if (rules.size === 0) return 0;
    const ids = await queryRows<{ case_id: string }>(deps.clickhouse, q.newCaseIds([...rules.keys()], CASES_PER_PASS), 'new automatic cases');
    if (ids.length === 0) return 0;
    const fresh = (
      await queryRows<Case & { evidence: string; hit_count: string | number }>(
        deps.clickhouse,
        caseQueries(deps.database).byIds(ids.map((r) => r.case_id)),
        'read new automatic cases',
      )
    )
      .map((r) => ({ ...r, hit_count: Number(r.hit_count), evidence: JSON.parse(r.evidence || '{}') as Record<string, unknown> }) as Case)
      // Oldest first, as the ids came.
      .sort((a, b) => (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : a.case_id < b.case_id ? -1 : a.case_id > b.case_id ? 1 : 0));
    if (fresh.length === 0) return 0;
    if (mode === 'off' || sw.paused) {
      const why =
        mode === 'off'
          ? 'Automation is off (AUTOMATION=off): support handles this case.'
          : `Automation is paused${sw.changedBy ? ` by ${sw.changedBy}` : ''}${sw.note ? ` (${sw.note})` : ''}: support handles this case.`;
      for (const c of fresh) await toSupport(c, why, nowMs);
      return fresh.length;
    }
    const orders = [...new Set(fresh.filter((c) => c.entity_type === 'order').map((c) => c.entity_id))];
    const attempts = orders.length
      ? (await queryRows<AttemptRow>(deps.clickhouse, q.attempts(orders), 'attempts of orders')).map((a) => ({
          ...a,
          attempt: Number(a.attempt),
          amount_minor: Number(a.amount_minor),
          first_succeeded: Number(a.first_succeeded),
        }))
      : [];
    const dayStartSec = Math.floor(nowMs / 86_400_000) * 86_400;
    const spent = await queryRows<{ currency: string; spent: string | number }>(deps.clickhouse, q.refundedSince(dayStartSec), 'refunds today');
    // Refunds of these orders' succeeded attempts already sent (by a pass killed before it recorded the case).
    const refundIds = attempts.filter((a) => a.first_succeeded > 0).map((a) => commandIdFor('refund', { caseId: '', orderId: a.order_id, attempt: a.attempt }));
    const sent = refundIds.length
      ? (await queryRows<StoredCommand>(deps.clickhouse, q.byIds(refundIds), 'refunds sent')).filter((s) => s.mode === 'on').map((s) => s.command_id)
      : [];
    const safety: RefundSafety = {
      enabled: deps.config.automationRefunds,
      max: deps.config.autoRefundMaxMinor,
      daily: deps.config.autoRefundDailyMinor,
      spentToday: new Map(spent.map((r) => [r.currency, Number(r.spent)])),
      sent: new Set(sent),
    };
    for (const c of fresh) {
      const rule = rules.get(c.rule_id)!;
      const plan = planCommands(
        c,
        rule,
        attempts.filter((a) => a.order_id === c.entity_id),
        safety,
      );
      if (plan.kind === 'support') {
        await toSupport(c, `Not handled automatically: ${plan.reason}. Support handles this case.`, nowMs);
        continue;
      }
      const expiresAtMs = nowMs + (rule.escalateAfterMs ?? 600_000);
      const stored = new Map(
        (await queryRows<StoredCommand>(deps.clickhouse, q.byIds(plan.commands.map((p) => p.command_id)), 'commands by id')).map((s) => [s.command_id, s]),
      );
      const rows: CommandVersionRow[] = [];
      const send: PaymentCommand[] = [];
      for (const p of plan.commands) {
        const before = stored.get(p.command_id);
        // Sent already (by an earlier pass, another case or another instance): never a second
        // command; re-publishing one still waiting is harmless, the gateway carries an id out once.
        if (before && before.mode === 'on') {
          if (mode === 'on' && before.status === 'issued') send.push(commandMessage(p, epochMs(before.issued_at), epochMs(before.expires_at)));
          continue;
        }
        if (before && mode === 'dry-run') continue;
        rows.push(issuedCommandRow(p, mode, nowMs, expiresAtMs, AUTOMATION_ACTOR));
        if (mode === 'on') send.push(commandMessage(p, nowMs, expiresAtMs));
      }
      // Stored before published: a command on the topic is always in the table.
      await storeVersions(rows);
      await publish(send);
      const list = plan.commands
        .map((p) =>
          describeCommand({
            ...p,
            order_id: p.order_id ?? '',
            attempt: p.attempt ?? 0,
            entity_type: p.entity_type ?? '',
            entity_id: p.entity_id ?? '',
            amount_minor: p.amount_minor ?? 0,
            currency: p.currency ?? '',
          }),
        )
        .join('; ');
      if (mode === 'dry-run') {
        await toSupport(c, `Dry run (AUTOMATION=dry-run): would have sent ${list}. Nothing was sent; support handles this case.`, nowMs);
      } else {
        const next: Case = { ...c, assignee: rule.alsoNotifySupport ? c.assignee : AUTOMATION_ASSIGNEE };
        await deps.cases.record(
          next,
          AUTOMATION_ACTOR,
          `Sent ${list}; outcome expected by ${toDateTimeText(expiresAtMs)} UTC, else support gets the case.`,
          nowMs,
        );
      }
      deps.logger.info(mode === 'on' ? 'commands sent' : 'commands recorded (dry-run)', {
        case_id: c.case_id,
        commands: plan.commands.map((p) => p.command_id),
      });
    }
    return fresh.length;
  }

  /** Step 2: outcomes of published commands, and escalation of those without a good one. */
  async function settle(nowMs: number): Promise<void> {
    const open = await queryRows<StoredCommand>(deps.clickhouse, q.outstanding(OUTSTANDING_PER_PASS), 'outstanding commands');
    if (open.length === 0) return;
    const waiting = open.filter((c) => c.status === 'issued' && c.order_id !== '');
    const answers = waiting.length
      ? await queryRows<{
          event_id: string;
          type: string;
          status: string;
          order_id: string;
          attempt: number | null;
          transaction_id: string;
          at: number | string;
        }>(
          deps.clickhouse,
          q.answers([...new Set(waiting.map((c) => c.order_id))], Math.min(...waiting.map((c) => Math.floor(epochMs(c.issued_at) / 1000)))),
          'command answers',
        )
      : [];
    // One new version per command and pass: an answer found now is settled in the same pass.
    const changed = new Map<string, StoredCommand>();
    const change = (c: StoredCommand) => changed.set(c.command_id, c);
    const escalate: StoredCommand[] = [];
    for (let c of open) {
      const issuedSec = Math.floor(epochMs(c.issued_at) / 1000);
      if (c.status === 'issued') {
        const answer = answers.find(
          (a) =>
            a.order_id === c.order_id &&
            Number(a.at) >= issuedSec &&
            (c.type === 'requery_status'
              ? a.type === 'payment' && Number(a.attempt) === Number(c.attempt)
              : c.type === 'refund' &&
                a.type === 'refund' &&
                a.status !== 'processing' &&
                (Number(a.attempt) === Number(c.attempt) || (c.transaction_id !== '' && a.transaction_id === c.transaction_id))),
        );
        if (answer) {
          const ok = c.type === 'requery_status' || answer.status === 'succeeded';
          c = { ...c, status: ok ? 'done' : 'failed', detail: `answered by ${answer.type} event ${answer.event_id}: ${answer.status}` };
          change(c);
        } else if (nowMs >= epochMs(c.expires_at)) {
          escalate.push({ ...c, status: 'expired', detail: `no outcome by ${c.expires_at} UTC` });
          continue;
        } else continue;
      }
      if (c.status === 'done') {
        // Done: a refund or block has handled the case; a status query only asked, and the case
        // waits for its resolve_when until the command's deadline.
        if (c.type === 'requery_status' && nowMs < epochMs(c.expires_at)) continue;
        const kase = await deps.cases.get(c.case_id);
        if (kase && kase.status !== 'resolved' && kase.assignee === AUTOMATION_ASSIGNEE) {
          if (c.type === 'requery_status') {
            escalate.push({ ...c, detail: `${c.detail}; the case is still open at ${c.expires_at} UTC` });
            continue;
          }
          await deps.cases.record(
            { ...kase, status: 'resolved', resolution: 'handled_automatically', evidence: { ...kase.evidence, automation: commandEvidence(c) } },
            AUTOMATION_ACTOR,
            `Handled automatically: ${describeCommand(c)} done (${c.detail}).`,
            nowMs,
          );
        }
        change({ ...c, escalated: 1 });
        continue;
      }
      // rejected, failed or expired, not yet given to support.
      escalate.push(c);
    }
    for (const c of escalate) {
      const kase = c.case_id ? await deps.cases.get(c.case_id) : null;
      if (kase && kase.status !== 'resolved') {
        await toSupport(kase, `Escalated to support: ${describeCommand(c)} is ${c.status}${c.detail ? ` (${c.detail})` : ''}.`, nowMs, commandEvidence(c));
      }
      change({ ...c, escalated: 1 });
    }
    await storeVersions([...changed.values()].map((c) => commandVersionRow(c, nowMs, AUTOMATION_ACTOR)));
  }

  return {
    /** One pass: take new cases, then settle outcomes. Returns the switch and mode it ran with. */
    async run(nowMs = now()): Promise<{ mode: AutomationMode; paused: boolean; taken: number }> {
      const sw = await readSwitch(deps.clickhouse, deps.database);
      const mode = deps.config.automation;
      const taken = await takeCases(mode, sw, nowMs);
      // A paused automation still records outcomes and escalates: only sending stops.
      if (mode !== 'off') await settle(nowMs);
      return { mode, paused: sw.paused, taken };
    },
  };
}
export type Automation = ReturnType<typeof createAutomation>;

/** What the case keeps of a command when automation hands it over or closes it. */
function commandEvidence(c: StoredCommand): Record<string, unknown> {
  return {
    command_id: c.command_id,
    type: c.type,
    status: c.status,
    detail: c.detail,
    issued_at: c.issued_at,
    expires_at: c.expires_at,
    target: c.type === 'block' ? { entity_type: c.entity_type, entity_id: c.entity_id, ttl_s: c.ttl_s } : { order_id: c.order_id, attempt: c.attempt },
  };
}
