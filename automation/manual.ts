import type { Producer } from 'kafkajs';
import type { CaseStore } from '../cases/index.ts';
import type { Config } from '../config/index.ts';
import type { CommandType } from '../contract/command.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { AUTOMATION_ASSIGNEE, commandMessage, describeCommand, type StoredCommand } from './automation.ts';
import { commandIdFor, type PlannedCommand } from './plan.ts';
import { automationQueries, commandVersionRow } from './queries.ts';

/**
 * What support can do to a command from the console: retry one that failed, was rejected or
 * expired (a new command, with its own id), or cancel one still waiting for its outcome. Both
 * are recorded in the case's history with who and why.
 */
export interface ManualCommandsDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  config: Pick<Config, 'automation' | 'commandsTopic'>;
  cases: Pick<CaseStore, 'get' | 'record'>;
}

export type ManualResult = { kind: 'ok'; command: StoredCommand } | { kind: 'not_found' } | { kind: 'conflict'; message: string };

/** How long a retried command may take before its case goes back to support. */
const RETRY_ESCALATE_MS = 10 * 60_000;

export function createManualCommands(deps: ManualCommandsDeps) {
  const q = automationQueries(deps.database);
  const versions = ident(deps.database, 'command_versions').text;
  const read = async (caseId: string, commandId: string) =>
    (await queryRows<StoredCommand>(deps.clickhouse, q.byIds([commandId]), 'command')).find((c) => c.case_id === caseId);
  const store = (c: StoredCommand, nowMs: number, who: string) => insertRows(deps.clickhouse, versions, [commandVersionRow(c, nowMs, who)]);

  return {
    /** Cancels a command still waiting for its outcome; support takes the case. */
    async cancel(caseId: string, commandId: string, who: string, note: string, nowMs: number): Promise<ManualResult> {
      const c = await read(caseId, commandId);
      if (!c) return { kind: 'not_found' };
      if (c.mode !== 'on' || c.status !== 'issued')
        return {
          kind: 'conflict',
          message:
            `Command ${commandId} is not pending (${c.mode === 'on' ? c.status : 'dry-run'}); ` +
            'only a sent command waiting for its outcome can be cancelled.',
        };
      const next: StoredCommand = { ...c, status: 'cancelled', detail: `cancelled by ${who}${note ? `: ${note}` : ''}`, escalated: 1 };
      await store(next, nowMs, who);
      const kase = await deps.cases.get(caseId);
      if (kase)
        await deps.cases.record(
          { ...kase, assignee: kase.assignee === AUTOMATION_ASSIGNEE ? who : kase.assignee },
          who,
          `Cancelled ${describeCommand(c)}${note ? `: ${note}` : ''}. The gateway may already have acted on it.`,
          nowMs,
        );
      return { kind: 'ok', command: next };
    },

    /** Sends a failed, rejected, expired or cancelled command again, as a new command; never a refund. */
    async retry(caseId: string, commandId: string, who: string, note: string, nowMs: number): Promise<ManualResult> {
      const c = await read(caseId, commandId);
      if (!c) return { kind: 'not_found' };
      if (c.type === 'refund')
        return {
          kind: 'conflict',
          message: 'A refund is never sent twice for one attempt: check the payment platform and refund by hand if it did not happen.',
        };
      if (!['failed', 'rejected', 'expired', 'cancelled'].includes(c.status) || c.mode !== 'on')
        return {
          kind: 'conflict',
          message:
            `Command ${commandId} is ${c.mode === 'on' ? c.status : 'a dry-run record'}; ` +
            'only a sent command that failed, was rejected, expired or was cancelled can be retried.',
        };
      if (deps.config.automation !== 'on')
        return { kind: 'conflict', message: `AUTOMATION=${deps.config.automation}: commands are not sent; retry from the gateway's own tools.` };
      const round = (await queryRows<StoredCommand>(deps.clickhouse, q.ofCases([caseId]), 'commands of case')).length;
      const planned: PlannedCommand = {
        command_id: commandIdFor(c.type as CommandType, {
          caseId,
          orderId: c.order_id,
          attempt: c.attempt,
          entity: c.entity_id ? `${c.entity_type}:${c.entity_id}` : undefined,
          round,
        }),
        type: c.type as CommandType,
        case_id: caseId,
        rule_id: c.rule_id,
        ...(c.order_id ? { order_id: c.order_id, attempt: Number(c.attempt) } : {}),
        ...(c.transaction_id ? { transaction_id: c.transaction_id } : {}),
        ...(c.entity_id ? { entity_type: c.entity_type as 'ip' | 'device' | 'user', entity_id: c.entity_id, ttl: c.ttl_s } : {}),
        reason: `Retry by ${who} of ${c.command_id}${note ? `: ${note}` : ''}.`,
      };
      const expiresAtMs = nowMs + RETRY_ESCALATE_MS;
      const next: StoredCommand = {
        ...c,
        command_id: planned.command_id,
        issued_at: toDateTimeText(nowMs),
        expires_at: toDateTimeText(expiresAtMs),
        reason: planned.reason,
        status: 'issued',
        detail: '',
        escalated: 0,
      };
      await store(next, nowMs, who);
      await deps.producer.send({
        topic: deps.config.commandsTopic,
        acks: -1,
        messages: [{ key: planned.order_id ?? planned.entity_id ?? planned.command_id, value: JSON.stringify(commandMessage(planned, nowMs, expiresAtMs)) }],
      });
      const kase = await deps.cases.get(caseId);
      if (kase)
        await deps.cases.record(
          { ...kase, assignee: kase.assignee === '' ? kase.assignee : AUTOMATION_ASSIGNEE },
          who,
          `Retried ${describeCommand(c)} as ${next.command_id}${note ? `: ${note}` : ''}; outcome expected by ${toDateTimeText(expiresAtMs)} UTC.`,
          nowMs,
        );
      return { kind: 'ok', command: next };
    },
  };
}
export type ManualCommands = ReturnType<typeof createManualCommands>;
