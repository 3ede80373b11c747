import { spawnSync } from 'node:child_process';
import { chromiumPath } from './chromium.ts';
import { fileURLToPath } from 'node:url';

/**
 * Integration tests need the real Kafka and ClickHouse. `npm test` starts them first; when a
 * developer runs vitest directly, start them here (idempotent: nothing happens if they answer).
 * The SQL forward-compatibility test also needs chdb (a current ClickHouse engine for Python):
 * installed here with pip when missing, as the stack installs ClickHouse and Kafka. The console's
 * browser tests drive Debian's chromium (playwright-core downloads no browser): installed here
 * with apt-get when missing.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const result = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'stack', 'up'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error('Could not start the local Kafka and ClickHouse ("paysentinel stack up" failed, see above).');
  ensureChdb();
  ensureChromium();
}

const say = (line: string) => process.stderr.write(`test setup: ${line}\n`);
const python = (args: string[], quiet = true) =>
  spawnSync('python3', args, { stdio: quiet ? 'ignore' : ['ignore', 'inherit', 'inherit'], timeout: 900_000 }).status === 0;

function ensureChdb(): void {
  if (python(['-c', 'import chdb'])) return;
  const hint = 'Install it with "python3 -m pip install chdb" (Python 3.8+ on Linux or macOS) and run the tests again.';
  say('chdb (a current ClickHouse engine, for the SQL forward-compatibility test) is missing; installing it with pip');
  if (!python(['-m', 'pip', '--version'])) {
    if (process.getuid?.() !== 0) throw new Error(`chdb is missing and python3 has no pip. ${hint}`);
    say('pip is missing; installing python3-pip with apt-get');
    const apt = (args: string[]) =>
      spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 900_000 })
        .status === 0;
    if (!apt(['update', '-q']) || !apt(['install', '-y', '-q', '--no-install-recommends', 'python3-pip']))
      throw new Error(`apt-get could not install python3-pip. ${hint}`);
  }
  // Debian's system Python refuses plain pip installs (PEP 668); the second form is its documented override.
  const installed = python(['-m', 'pip', 'install', '-q', 'chdb'], false) || python(['-m', 'pip', 'install', '-q', '--break-system-packages', 'chdb'], false);
  if (!installed || !python(['-c', 'import chdb'])) throw new Error(`pip could not install chdb. ${hint}`);
  say('chdb installed');
}

function ensureChromium(): void {
  if (chromiumPath()) return;
  const hint = 'Install it with "apt-get install chromium" (Debian) and run the tests again.';
  if (process.getuid?.() !== 0) throw new Error(`chromium is missing for the console's browser tests. ${hint}`);
  say('chromium (for the console browser tests) is missing; installing it with apt-get');
  const apt = (args: string[]) =>
    spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 900_000 })
      .status === 0;
  if (!apt(['update', '-q']) || !apt(['install', '-y', '-q', '--no-install-recommends', 'chromium']))
    throw new Error(`apt-get could not install chromium. ${hint}`);
  say('chromium installed');
}
