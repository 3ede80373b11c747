import type { Kafka, Producer } from 'kafkajs';
import { decodeCommandResult, type CommandResult } from '../contract/command.ts';
import type { Logger } from '../log/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import type { StoredCommand } from './automation.ts';
import { automationQueries, commandVersionRow } from './queries.ts';

/**
 * The gateway's answers on the results topic become versions of their commands. Offsets are
 * committed only after the versions are stored (and anything that is not a result of a known
 * command is on the dead-letter topic with its reason): a crash re-reads, never loses, an answer;
 * re-reading one stores the same status again, which changes nothing.
 */

export interface ResultsDeps {
  kafka: Kafka;
  producer: Pick<Producer, 'send'>;
  clickhouse: ClickHouseClient;
  database: string;
  topic: string;
  groupId: string;
  /** Where messages that are not results of known commands go, with a `reason` header. */
  dlqTopic: string;
  logger: Logger;
}

/** What one batch of results comes to: versions to store, messages to dead-letter. */
export function applyResults(
  results: readonly { result: CommandResult; offset: string }[],
  known: ReadonlyMap<string, StoredCommand>,
  nowMs: number,
): { versions: StoredCommand[]; unknown: { offset: string; reason: string }[] } {
  const versions: StoredCommand[] = [];
  const unknown: { offset: string; reason: string }[] = [];
  for (const { result, offset } of results) {
    const c = known.get(result.command_id);
    if (!c) {
      unknown.push({ offset, reason: `unknown command_id ${result.command_id}` });
      continue;
    }
    // A final outcome stays: a late "done" after expiry is recorded, a repeat changes nothing.
    if (c.status === result.status || c.status === 'cancelled') continue;
    versions.push({ ...c, status: result.status, detail: result.detail ?? '', escalated: 0, changed_at: toDateTimeText(nowMs) });
  }
  return { versions, unknown };
}

export async function startCommandResults(deps: ResultsDeps): Promise<{ stop(): Promise<void> }> {
  const consumer = deps.kafka.consumer({ groupId: deps.groupId });
  const q = automationQueries(deps.database);
  await consumer.connect();
  await consumer.subscribe({ topic: deps.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const decoded = batch.messages.map((m) => ({ m, d: decodeCommandResult(m.value) }));
      const ok = decoded.flatMap(({ m, d }) => (d.ok ? [{ result: d.result, offset: m.offset }] : []));
      const known = ok.length
        ? new Map(
            (await queryRows<StoredCommand>(deps.clickhouse, q.byIds([...new Set(ok.map((r) => r.result.command_id))]), 'commands answered')).map((c) => [
              c.command_id,
              c,
            ]),
          )
        : new Map<string, StoredCommand>();
      const nowMs = Date.now();
      const { versions, unknown } = applyResults(ok, known, nowMs);
      await insertRows(
        deps.clickhouse,
        ident(deps.database, 'command_versions').text,
        versions.map((c) => commandVersionRow(c, nowMs, 'gateway')),
      );
      const bad = [
        ...decoded.flatMap(({ m, d }) => (d.ok ? [] : [{ m, reason: d.reason }])),
        ...unknown.map((u) => ({ m: batch.messages.find((x) => x.offset === u.offset)!, reason: u.reason })),
      ];
      if (bad.length)
        await deps.producer.send({
          topic: deps.dlqTopic,
          acks: -1,
          messages: bad.map(({ m, reason }) => ({ key: m.key, value: m.value, headers: { reason, source_topic: deps.topic } })),
        });
      for (const b of bad) deps.logger.warn('command result dead-lettered', { reason: b.reason, offset: b.m.offset });
      for (const v of versions) deps.logger.info('command result', { command_id: v.command_id, status: v.status });
      const last = batch.messages.at(-1);
      if (last) await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(BigInt(last.offset) + 1n) }]);
    },
  });
  return {
    async stop() {
      await consumer.disconnect();
    },
  };
}
