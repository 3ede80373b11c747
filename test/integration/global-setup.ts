import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Integration tests need the real Kafka and ClickHouse. `npm test` starts them first; when a
 * developer runs vitest directly, start them here (idempotent: nothing happens if they answer).
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const result = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'stack', 'up'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error('Could not start the local Kafka and ClickHouse ("paysentinel stack up" failed, see above).');
}
