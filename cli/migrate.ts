import { loadConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { MIGRATION_TIMEOUT_MS, createClickHouse } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { parseCommandArgs, type Command } from './command.ts';

export const migrateCommand: Command = {
  name: 'migrate',
  help: `Usage: paysentinel migrate [--json]

Creates the database and applies the versioned migrations in storage/migrations that are not
yet recorded in <database>.schema_migrations. Safe to run again: it applies nothing new.
"paysentinel start" does this too.`,
  async run(argv) {
    const { values } = parseCommandArgs('migrate', argv, { json: { type: 'boolean' } });
    const config = loadConfig();
    const client = createClickHouse(config, { requestTimeoutMs: MIGRATION_TIMEOUT_MS });
    try {
      const applied = await migrate(client, config.clickhouseDatabase, createLogger({ level: config.logLevel }));
      if (values.json) process.stdout.write(JSON.stringify({ database: config.clickhouseDatabase, applied }) + '\n');
      else process.stdout.write(applied.length ? `Applied migrations: ${applied.join(', ')}\n` : 'Schema is up to date.\n');
      return 0;
    } finally {
      await client.close();
    }
  },
};
