import { loadConfig } from '../config/index.ts';
import { createLogger } from '../log/index.ts';
import { migrateDatabase } from '../storage/migrations.ts';
import { parseCommandArgs, type Command } from './command.ts';

export const migrateCommand: Command = {
  name: 'migrate',
  help: `Usage: paysentinel migrate [--json]

Creates the database and applies the versioned migrations in storage/migrations that are not
yet recorded in <database>.schema_migrations. Safe to run again: it applies nothing new.
"paysentinel start" does this too. Instances started together migrate one at a time: the
others wait (and say so every 10 s) while one holds <database>.migration_lock.`,
  async run(argv) {
    const { values } = parseCommandArgs('migrate', argv, { json: { type: 'boolean' } });
    const config = loadConfig();
    const applied = await migrateDatabase(config, createLogger({ level: config.logLevel }));
    if (values.json) process.stdout.write(JSON.stringify({ database: config.clickhouseDatabase, applied }) + '\n');
    else process.stdout.write(applied.length ? `Applied migrations: ${applied.join(', ')}\n` : 'Schema is up to date.\n');
    return 0;
  },
};
