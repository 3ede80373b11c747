import { parseCommandArgs, type Command } from '../cli/command.ts';
import { createCaseStore } from '../cases/index.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { readOrderStory, type OrderStory } from './orders.ts';

const help = `paysentinel orders: the whole story of one order, as support needs it when a customer calls

Usage:
  paysentinel orders show ORDER_OR_TRANSACTION_ID [--json]

Every attempt with every status report in time order and its source (gateway callback, status
query, reconciliation, client), the callback delay, refunds, and the order's cases. The same
as the console's order page and GET /api/v1/orders/{id}.

Example:
  paysentinel orders show ord-20261125-0042`;

function text(story: OrderStory): string {
  const lines = [`Order ${story.order_id}`];
  for (const a of story.attempts) {
    lines.push('', `Attempt ${a.attempt}: ${a.outcome}${a.callback_delay_ms === null ? '' : ` (callback after ${(a.callback_delay_ms / 1000).toFixed(1)} s)`}`);
    for (const r of a.reports) {
      lines.push(
        `  ${r.occurred_at}.${String(r.occurred_ms).padStart(3, '0')}  ${r.status.padEnd(10)} ${(r.source ?? '-').padEnd(16)} ` +
          `${r.amount_minor} ${r.currency} (minor units)  ${r.channel}` +
          `${r.failure_code ? `  ${r.failure_code}` : ''}${r.transaction_id ? `  tx ${r.transaction_id}` : ''}`,
      );
    }
  }
  lines.push('', story.refunds.length ? 'Refunds:' : 'Refunds: none');
  for (const r of story.refunds) lines.push(`  ${r.occurred_at}  ${r.status}  ${r.amount_minor} ${r.currency}`);
  lines.push('', story.cases.length ? 'Cases:' : 'Cases: none');
  for (const c of story.cases) lines.push(`  ${c.case_id}  ${c.status}${c.resolution ? ` (${c.resolution})` : ''}  ${c.title}`);
  return lines.join('\n') + '\n';
}

export const ordersCommand: Command = {
  name: 'orders',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs('orders', argv, { json: { type: 'boolean' } }, true);
    const [action, id, ...extra] = positionals;
    const usage = (msg: string) => new PaysentinelError('USAGE', `${msg}\nRun "paysentinel orders --help" for usage.`);
    if (action !== 'show') throw usage('Say what to do: show.');
    if (!id || id.length > 128 || extra.length > 0) throw usage('"orders show" needs one order or transaction id (at most 128 characters).');
    const config = loadConfig();
    const clickhouse = createClickHouse(config);
    try {
      // Reads only: the case store is given a producer it never uses.
      const cases = createCaseStore({ clickhouse, database: config.clickhouseDatabase, producer: { send: async () => [] }, topic: config.casesTopic });
      const story = await readOrderStory({ clickhouse, database: config.clickhouseDatabase, cases }, id);
      if (!story) throw new PaysentinelError('USAGE', `No order or transaction ${JSON.stringify(id)} is stored.`);
      process.stdout.write(values.json ? JSON.stringify(story, null, 2) + '\n' : text(story));
      return 0;
    } finally {
      await clickhouse.close();
    }
  },
};
