/** Scheduled analytics: payment rates computed in ClickHouse, the jobs that store them, and their run log. */
export { computeRates, readStoredRates, run as runRatesJob, planBuckets, planChunks, planStart, floorTo, RATES_JOB, DEFAULT_RESTATE_MS } from './rates.ts';
export type { RateRow, RatesOptions, RatesRunOptions, RatesChunk } from './rates.ts';
export { runJob, lastSuccessfulWindowEnd, recentRuns, reportJobFailure } from './jobs.ts';
export type { AnalyticsDeps, JobRun, JobRunRow, ManualRun, ScheduledJob } from './jobs.ts';
export { bucketSizes, dimensions, countColumns, rateColumns } from './queries.ts';
export type { BucketSize, Dimension } from './queries.ts';
export { formatRatesTable, parseTime } from './format.ts';
export { analyticsJobs, startAnalyticsSchedule } from './schedule.ts';
export type { AnalyticsSchedule, JobDeps } from './schedule.ts';
export {
  run as runRetryPolicyJob,
  tunePolicy,
  decide as decideRetryPolicy,
  wilson,
  peakHours,
  readPolicy,
  readPreviousPolicy,
  RETRY_POLICY_JOB,
  NEVER_RETRY,
  DEFAULT_POLICY_OPTIONS,
  retryPolicyScheduledJob,
} from './retry-policy.ts';
export type { PolicyEntry, PolicyAction, PolicyOptions, PolicyPublisher, RetryPolicyDeps, RetryPolicyRunOptions } from './retry-policy.ts';
export { createKafkaPolicyPublisher, policyMessage, RETRY_POLICY_TOPIC } from './retry-policy-kafka.ts';
export type { KafkaPolicyPublisher } from './retry-policy-kafka.ts';
export { formatPolicy, formatPolicyDiff, policyChanges } from './policy-format.ts';
export {
  run as runReconcileJob,
  readReconcile,
  reconcileScheduledJob,
  RECONCILE_JOB,
  DEFAULT_STUCK_AFTER_MS,
  DEFAULT_RECONCILE_LOOKBACK_MS,
} from './reconcile.ts';
export type { ReconcileReport, ReconciledAttempt, CallbackDelays, ReconcileRunOptions } from './reconcile.ts';
export {
  run as runBaselinesJob,
  baselineFacts,
  readBaselines,
  baselinesScheduledJob,
  BASELINES_JOB,
  ALL_HOURS,
  TECHNICAL_FAILURE_CODES,
  DEFAULT_BASELINE_LOOKBACK_MS,
  DEFAULT_BASELINE_MIN_DECIDED,
} from './baselines.ts';
export type { Baseline, BaselinesRunOptions } from './baselines.ts';
export {
  run as runDailyReportJob,
  collectDailyReport,
  formatDailyReport,
  reportPeriod,
  reportFileName,
  dailyReportScheduledJob,
  DAILY_REPORT_JOB,
  DEFAULT_REPORTS_DIR,
} from './daily-report.ts';
export type { DailyReportData, DailyReportRun, DailyReportRunOptions, PeriodRow, RuleCases } from './daily-report.ts';
