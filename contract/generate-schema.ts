// Writes the contract's JSON Schema files from its TypeScript source: the payment event, the command and the command result.
import { writeFileSync } from 'node:fs';
import { CommandResultSchema, PaymentCommandSchema } from './command.ts';
import { PaymentEventSchema } from './schema.ts';

const files = {
  'payment-event.v1.schema.json': PaymentEventSchema,
  'payment-command.v1.schema.json': PaymentCommandSchema,
  'command-result.v1.schema.json': CommandResultSchema,
};
for (const [name, schema] of Object.entries(files)) writeFileSync(new URL(`./${name}`, import.meta.url), JSON.stringify(schema, null, 2) + '\n');
