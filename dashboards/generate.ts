/**
 * Writes the provisioned dashboard JSON from the TypeScript sources:
 *   node --import tsx dashboards/generate.ts
 * dashboards/dashboards.test.ts fails while the committed files differ from what this writes.
 */
import { readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dashboardFiles } from './build.ts';

const dir = new URL('./json/', import.meta.url);
const files = dashboardFiles();
for (const [name, text] of files) writeFileSync(new URL(name, dir), text);
// A dashboard removed from the sources must not stay provisioned.
for (const name of readdirSync(dir)) if (name.endsWith('.json') && !files.has(name)) unlinkSync(new URL(name, dir));
console.log(`wrote ${[...files.keys()].join(', ')} to dashboards/json`);
