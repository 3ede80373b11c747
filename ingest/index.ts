export { createIngestor, type Ingestor, type IngestorDeps } from './pipeline.ts';
export { createEventWriter, uniqueByEventId, type WriteResult } from './writer.ts';
export { toEventRow, toPendingRow, lineOf, toDeadLetter, type EventRow, type PendingRow, type DeadLetter, type MessageSource } from './records.ts';
export { measureLag, startLagPoller } from './lag.ts';
