/** Cases: what rule hits become, stored and published for support, and delivered to a webhook. */
export { caseStatuses, caseIdFor, decideCases, createCaseBook, type Case, type CaseBook, type CaseStatus } from './decide.ts';
export { createCaseStore, casesAsOf, caseQueries, type CaseFilter, type CaseStore, type CaseStoreDeps } from './store.ts';
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
