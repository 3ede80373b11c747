// Writes the JSON Schema files editors use for features.json, rule files and fixtures, from rules/schema.ts.
import { writeFileSync } from 'node:fs';
import { schemaFiles } from './schema.ts';

for (const [name, schema] of Object.entries(schemaFiles)) {
  writeFileSync(new URL(`./${name}`, import.meta.url), JSON.stringify(schema, null, 2) + '\n');
}
