import { describeSettings, loadConfig, settings } from '../config/index.ts';
import { parseCommandArgs, type Command } from './command.ts';

export const configCommand: Command = {
  name: 'config',
  help: `Usage: paysentinel config [--json]

Lists every environment variable paysentinel reads, its default and meaning, then checks the
current environment and prints the values in effect (secrets hidden). Exits 1 when a value is invalid.`,
  async run(argv) {
    const { values } = parseCommandArgs('config', argv, { json: { type: 'boolean' } });
    const config = loadConfig();
    const effective = Object.fromEntries(
      Object.entries(settings).map(([key, s]) => [
        s.env,
        'secret' in s && s.secret ? (config[key as keyof typeof config] ? '(set)' : '(empty)') : config[key as keyof typeof config],
      ]),
    );
    if (values.json) {
      process.stdout.write(JSON.stringify(effective, null, 2) + '\n');
    } else {
      process.stdout.write(describeSettings() + '\n\nIn effect:\n');
      for (const [k, v] of Object.entries(effective)) process.stdout.write(`  ${k}=${Array.isArray(v) ? v.join(',') : String(v)}\n`);
    }
    return 0;
  },
};
