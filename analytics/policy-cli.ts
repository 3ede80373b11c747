import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createClickHouse } from '../storage/clickhouse.ts';
import { formatPolicy, formatPolicyDiff, policyChanges } from './policy-format.ts';
import { readPolicy, readPreviousPolicy } from './retry-policy.ts';

const help = `Usage:
  paysentinel policy show [--json]
  paysentinel policy diff [--json]

show   The current retry policy (the latest run of the retry-policy job): per channel and
       failure code whether to retry, max attempts, backoff, the peak hours (UTC) where fewer
       retries are made, and the evidence: per attempt k, how many failures with that code
       were retried, how many retries succeeded, that probability and its 95% Wilson interval,
       and a one-line reason.
diff   What the last run changed against the run before it, and why.

The job runs hourly inside "paysentinel start"; run it by hand with
"paysentinel analytics run retry-policy". The policy is also published to the compacted Kafka
topic payments.retry-policy (key channel:failure_code). Definitions: analytics/DEFINITIONS.md.

Options:
  --json   One JSON object per line instead of text.`;

export const policyCommand: Command = {
  name: 'policy',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs('policy', argv, { json: { type: 'boolean' } }, true);
    const [sub, ...extra] = positionals;
    if (extra.length > 0 || (sub !== 'show' && sub !== 'diff')) {
      const problem =
        sub === undefined ? 'Missing subcommand' : extra.length > 0 ? `Unexpected arguments: ${extra.join(' ')}` : `Unknown subcommand ${JSON.stringify(sub)}`;
      throw new PaysentinelError('USAGE', `${problem}: use show or diff.\nRun "paysentinel policy --help" for usage.`);
    }
    const config = loadConfig();
    const clickhouse = createClickHouse(config);
    const deps = { clickhouse, database: config.clickhouseDatabase };
    try {
      const latest = await readPolicy(deps);
      if (sub === 'show') {
        if (values.json) for (const e of latest) process.stdout.write(JSON.stringify(e) + '\n');
        else process.stdout.write(formatPolicy(latest) + '\n');
        return 0;
      }
      const changes = policyChanges(latest, await readPreviousPolicy(deps));
      if (values.json) for (const c of changes) process.stdout.write(JSON.stringify(c) + '\n');
      else process.stdout.write(formatPolicyDiff(changes) + '\n');
      return 0;
    } catch (err) {
      // Before the first migration the database or table does not exist: say what to do.
      if (err instanceof Error && /doesn't exist|does not exist|UNKNOWN_TABLE|UNKNOWN_DATABASE|Code: (60|81)\b/i.test(err.message)) {
        throw new PaysentinelError('USAGE', 'No retry policy table yet: run "paysentinel migrate" and "paysentinel analytics run retry-policy".', {
          cause: err,
        });
      }
      throw err;
    } finally {
      await clickhouse.close();
    }
  },
};
