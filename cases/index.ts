/** Cases: what rule hits become, stored and published for support, and delivered to a webhook. */
export {
  caseStatuses,
  resolutions,
  SYSTEM_RESOLUTION,
  SYSTEM_ACTOR,
  caseIdFor,
  decideCases,
  createCaseBook,
  type Case,
  type CaseBook,
  type CaseStatus,
  type Resolution,
} from './decide.ts';
export {
  createCaseStore,
  casesAsOf,
  caseQueries,
  conflictOf,
  type ActResult,
  type CaseChange,
  type CaseFilter,
  type CaseHistoryEntry,
  type CaseStore,
  type CaseStoreDeps,
  type InboxCursor,
  type InboxFilter,
  type RuleStats,
} from './store.ts';
export { REAL_RESOLUTIONS, FALSE_RESOLUTIONS, precisionColumns, precisionOf } from './precision.ts';
export {
  startCaseWebhook,
  signWebhook,
  verifyWebhook,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  type CaseWebhook,
  type CaseWebhookOptions,
  type VerifyInput,
  type VerifyResult,
} from './webhook.ts';
