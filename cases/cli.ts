import { userInfo } from 'node:os';
import { Partitioners } from 'kafkajs';
import { parseCommandArgs, type Command } from '../cli/command.ts';
import { parseDuration } from '../rules/duration.ts';
import { loadConfig, type Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createKafka } from '../kafka/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { automationQueries } from '../automation/queries.ts';
import { caseStatuses, resolutions, type Case } from './decide.ts';
import { createCaseStore, type CaseStore } from './store.ts';
import { customerMessage, customerMessagesOf } from '../console/customer-message.ts';
import { readOrderStory } from '../console/orders.ts';
import { loadRuleSet } from '../rules/load.ts';

const help = `paysentinel cases: the cases detection opened, for support and the risk team

Usage:
  paysentinel cases list [--status open|acknowledged|resolved] [--rule RULE_ID] [--since 24h] [--limit N] [--json]
  paysentinel cases show CASE_ID [--json]
  paysentinel cases ack CASE_ID --note TEXT [--by NAME]
  paysentinel cases resolve CASE_ID --note TEXT [--resolution KIND] [--by NAME]

list     Newest first, as a table (or JSON lines with --json).
show     One case: evidence, the recommended next step, the customer message (order cases of
         a rule with a <rule_id>.message.txt), the commands automation sent to the gateway for
         it (or would have sent, in dry-run) with their outcome, and its history (who changed
         what, when: support, detection, automation or the system).
ack      Marks a case acknowledged: you are on it. Further hits keep updating it.
resolve  Closes a case, with how (--resolution: confirmed_fraud, false_positive,
         customer_contacted, refunded or no_action_needed). A new hit within the rule's cooldown reopens this case's updates;
         after the cooldown a new hit opens a new case.
Every change is stored with who (--by, default the login name), when and the note, and is
published to the cases topic like any update.

Examples:
  paysentinel cases list --status open --since 2h
  paysentinel cases ack C1a2b3c4d5e6f7a8 --note "calling the customer"`;

function table(cases: readonly Case[]): string {
  if (cases.length === 0) return 'No cases match.\n';
  const rows = cases.map((c) => [
    c.case_id,
    c.status,
    c.severity,
    c.rule_id,
    `${c.entity_type} ${c.entity_id}`,
    String(c.hit_count),
    c.updated_at,
    c.recommended_action,
  ]);
  const header = ['case', 'status', 'severity', 'rule', 'entity', 'hits', 'updated (UTC)', 'next step'];
  const widths = header.map((h, i) => Math.min(i === 7 ? 80 : 40, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const cut = (s: string, w: number) => (s.length > w ? s.slice(0, w - 1) + '…' : s.padEnd(w));
  return (
    [header, ...rows]
      .map((r) =>
        r
          .map((c, i) => cut(c, widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** The case's customer message, from the configured rules and the order's stored story (null without one). */
async function messageOf(c: Case, config: Config, clickhouse: ClickHouseClient, store: CaseStore): Promise<string | null> {
  if (c.entity_type !== 'order') return null;
  const rules = await loadRuleSet({ rulesPath: config.rulesPath || undefined, featuresPath: config.featuresPath || undefined });
  if (!rules.ok) {
    process.stderr.write(`The rules do not load ("paysentinel rules validate" says why), so no customer message is shown.\n`);
    return null;
  }
  const messages = customerMessagesOf(rules.ruleSet);
  if (!messages.has(c.rule_id)) return null;
  const story = await readOrderStory({ clickhouse, database: config.clickhouseDatabase, cases: store }, c.entity_id);
  return customerMessage(c, story, messages);
}

export const casesCommand: Command = {
  name: 'cases',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      'cases',
      argv,
      {
        status: { type: 'string' },
        rule: { type: 'string' },
        since: { type: 'string' },
        limit: { type: 'string' },
        note: { type: 'string' },
        by: { type: 'string' },
        resolution: { type: 'string' },
        json: { type: 'boolean' },
      },
      true,
    );
    const [action, id] = positionals;
    const usage = (msg: string) => new PaysentinelError('USAGE', `${msg}\nRun "paysentinel cases --help" for usage.`);
    if (!action || !['list', 'show', 'ack', 'resolve'].includes(action)) throw usage('Say what to do: list, show, ack or resolve.');
    if (values.status && !(caseStatuses as readonly string[]).includes(values.status)) throw usage(`--status must be one of ${caseStatuses.join(', ')}.`);
    if (action !== 'list' && !id) throw usage(`"cases ${action}" needs a case id.`);
    if ((action === 'ack' || action === 'resolve') && !values.note) throw usage(`"cases ${action}" needs --note saying what was done.`);
    if (values.resolution !== undefined && action !== 'resolve') throw usage('--resolution goes with "cases resolve".');
    if (values.resolution !== undefined && !(resolutions as readonly string[]).includes(values.resolution))
      throw usage(`--resolution must be one of ${resolutions.join(', ')}.`);
    const sinceMs = values.since === undefined ? undefined : parseDuration(values.since);
    if (sinceMs === null) throw usage(`--since ${values.since} is not a duration such as 2h or 7d.`);

    const config = loadConfig();
    const clickhouse = createClickHouse(config);
    const kafka = createKafka(config, createLogger({ level: 'error' }), '-cli');
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    const needsKafka = action === 'ack' || action === 'resolve';
    try {
      await migrateDatabase(config, createLogger({ level: 'warn' }));
      if (needsKafka) await producer.connect();
      const store = createCaseStore({ clickhouse, database: config.clickhouseDatabase, producer, topic: config.casesTopic });
      if (action === 'list') {
        const cases = await store.list({
          status: values.status,
          rule: values.rule,
          sinceMs: sinceMs === undefined ? undefined : Date.now() - sinceMs,
          limit: values.limit ? Number(values.limit) : 200,
        });
        process.stdout.write(values.json ? cases.map((c) => JSON.stringify(c)).join('\n') + (cases.length ? '\n' : '') : table(cases));
        return 0;
      }
      if (action === 'show') {
        const c = await store.get(id!);
        if (!c) throw new PaysentinelError('USAGE', `No case ${id}. "paysentinel cases list" shows the ids.`);
        const history = await store.history(id!);
        const commands = await queryRows<Record<string, string | number>>(
          clickhouse,
          automationQueries(config.clickhouseDatabase).ofCases([id!]),
          'commands of case',
        );
        const message = await messageOf(c, config, clickhouse, store);
        if (values.json) {
          process.stdout.write(JSON.stringify({ ...c, history, commands, customer_message: message }, null, 2) + '\n');
        } else {
          process.stdout.write(
            [
              `${c.case_id}  ${c.status.toUpperCase()}  ${c.severity}  ${c.title}`,
              `rule ${c.rule_id} (version ${c.rule_version}) on ${c.entity_type} ${c.entity_id}`,
              `opened ${c.opened_at} UTC, updated ${c.updated_at} UTC, ${c.hit_count} hit(s)`,
              '',
              `Next step: ${c.recommended_action}`,
              '',
              ...(message ? ['Customer message:', ...message.split('\n').map((l) => `  ${l}`.trimEnd()), ''] : []),
              'Evidence:',
              ...Object.entries(c.evidence).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
              '',
              ...(commands.length
                ? [
                    'Commands to the gateway:',
                    ...commands.map(
                      (k) =>
                        `  ${k.command_id}  ${String(k.type).padEnd(15)} ${k.mode === 'on' ? 'sent' : 'would have sent (dry-run)'} ${k.issued_at} UTC  ` +
                        `${k.mode === 'on' ? `${k.status}${k.detail ? `: ${k.detail}` : ''}` : ''}` +
                        `${k.mode === 'on' && k.status === 'issued' ? ` (outcome due by ${k.expires_at} UTC)` : ''}`,
                    ),
                    '',
                  ]
                : []),
              'History:',
              ...history.map((h) => `  ${h.updated_at}  ${h.status.padEnd(12)} hits ${h.hit_count}  by ${h.changed_by}${h.note ? `: ${h.note}` : ''}`),
              '',
            ].join('\n'),
          );
        }
        return 0;
      }
      const who = values.by ?? (process.env.USER || userInfo().username || 'unknown');
      const next = await store.setStatus(
        id!,
        action === 'ack' ? 'acknowledged' : 'resolved',
        who,
        values.note!,
        Date.now(),
        resolutions.find((r) => r === values.resolution),
      );
      if (!next) throw new PaysentinelError('USAGE', `No case ${id}. "paysentinel cases list" shows the ids.`);
      process.stdout.write(values.json ? JSON.stringify(next) + '\n' : `${next.case_id} is now ${next.status} (by ${who}).\n`);
      return 0;
    } finally {
      if (needsKafka) await producer.disconnect();
      await clickhouse.close();
    }
  },
};
