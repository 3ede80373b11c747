import { userInfo } from 'node:os';
import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { readSwitch, writeSwitch } from './automation.ts';
import { automationQueries } from './queries.ts';

const help = `paysentinel automation: the kill switch of automatic handling, and what it has done

Usage:
  paysentinel automation status [--json]
  paysentinel automation pause --note TEXT [--by NAME]
  paysentinel automation resume --note TEXT [--by NAME]

status   The AUTOMATION setting (off, dry-run or on), whether automation is paused, by whom and
         why, and the commands sent so far by type, mode and status.
pause    Stops sending commands at once, on every instance, without a restart: the next pass
         (every 2 s) hands new cases of automatic rules to support instead. Outcomes of commands
         already sent are still recorded, and those without one still escalate.
resume   Sends commands again (as AUTOMATION says).

The switch is stored in ClickHouse (automation_switch) and shown in /healthz ("automation")
and on the Pipeline health dashboard.

Examples:
  paysentinel automation pause --note "gateway incident INC-42"
  paysentinel automation status --json`;

export const automationCommand: Command = {
  name: 'automation',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs('automation', argv, { note: { type: 'string' }, by: { type: 'string' }, json: { type: 'boolean' } }, true);
    const [action, ...extra] = positionals;
    const usage = (msg: string) => new PaysentinelError('USAGE', `${msg}\nRun "paysentinel automation --help" for usage.`);
    if (!action || !['status', 'pause', 'resume'].includes(action) || extra.length > 0) throw usage('Say what to do: status, pause or resume.');
    if (action !== 'status' && !values.note) throw usage(`"automation ${action}" needs --note saying why.`);
    const config = loadConfig();
    const clickhouse = createClickHouse(config);
    try {
      await migrateDatabase(config, createLogger({ level: 'warn' }));
      if (action !== 'status') {
        const paused = 'paused: no command is sent until "paysentinel automation resume"';
        const who = values.by ?? (process.env.USER || userInfo().username || 'unknown');
        await writeSwitch(clickhouse, config.clickhouseDatabase, action === 'pause', who, values.note!, Date.now());
        process.stdout.write(
          values.json
            ? JSON.stringify({ paused: action === 'pause', by: who, note: values.note }) + '\n'
            : `Automation is ${action === 'pause' ? paused : `running again (AUTOMATION=${config.automation})`} (by ${who}).\n`,
        );
        return 0;
      }
      const sw = await readSwitch(clickhouse, config.clickhouseDatabase);
      const counts = await queryRows<{ type: string; mode: string; status: string; n: string | number }>(
        clickhouse,
        automationQueries(config.clickhouseDatabase).counts(),
        'command counts',
      );
      const commands = counts.map((c) => ({ type: c.type, mode: c.mode, status: c.status, count: Number(c.n) }));
      if (values.json) {
        process.stdout.write(
          JSON.stringify({
            setting: config.automation,
            refunds: config.automationRefunds,
            paused: sw.paused,
            paused_by: sw.changedBy,
            note: sw.note,
            commands,
          }) + '\n',
        );
        return 0;
      }
      const state = sw.paused ? `PAUSED by ${sw.changedBy}${sw.note ? ` (${sw.note})` : ''}` : 'running';
      process.stdout.write(
        [
          `AUTOMATION=${config.automation}, refunds ${config.automationRefunds ? 'on' : 'off'}: ${state}`,
          '',
          commands.length ? 'Commands (type, mode, status, count):' : 'No commands yet.',
          ...commands.map((c) => `  ${c.type.padEnd(15)} ${(c.mode === 'on' ? 'sent' : 'would have sent').padEnd(16)} ${c.status.padEnd(10)} ${c.count}`),
          '',
        ].join('\n'),
      );
      return 0;
    } finally {
      await clickhouse.close();
    }
  },
};
