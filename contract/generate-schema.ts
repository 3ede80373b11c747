// Writes contract/payment-event.v1.schema.json from the TypeScript source of the contract.
import { writeFileSync } from 'node:fs';
import { PaymentEventSchema } from './schema.ts';

writeFileSync(new URL('./payment-event.v1.schema.json', import.meta.url), JSON.stringify(PaymentEventSchema, null, 2) + '\n');
