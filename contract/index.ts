export {
  PaymentEventSchema,
  eventTypes,
  eventStatuses,
  eventSources,
  knownFailureCodes,
  contractFields,
  eventFields,
  MAX_AMOUNT_MINOR,
  type PaymentEvent,
  type EventType,
  type EventStatus,
  type EventSource,
  type EventField,
} from './schema.ts';
export { validateEvent, decodeEvent, parseRfc3339, type ValidEvent, type ValidationResult } from './validate.ts';
