export {
  PaymentEventSchema,
  eventTypes,
  eventStatuses,
  eventSources,
  knownFailureCodes,
  contractFields,
  MAX_AMOUNT_MINOR,
  type PaymentEvent,
  type EventType,
  type EventStatus,
  type EventSource,
} from './schema.ts';
export { validateEvent, decodeEvent, parseRfc3339, type ValidEvent, type ValidationResult } from './validate.ts';
export {
  PaymentCommandSchema,
  CommandResultSchema,
  commandTypes,
  resultStatuses,
  commandStatuses,
  decodeCommandResult,
  commandProblem,
  MAX_RESULT_BYTES,
  type PaymentCommand,
  type CommandResult,
  type CommandType,
  type CommandStatus,
  type ResultStatus,
} from './command.ts';
