/** Automatic handling: commands to the payment gateway for the cases of automatic rules, and their outcomes. */
export {
  createAutomation,
  readSwitch,
  writeSwitch,
  describeCommand,
  commandMessage,
  AUTOMATION_ASSIGNEE,
  type Automation,
  type AutomationDeps,
  type AutomationSwitch,
  type StoredCommand,
} from './automation.ts';
export { commandIdFor, planCommands, refundVerdict, type AttemptRow, type PlannedCommand, type Plan, type RefundSafety } from './plan.ts';
export { automationQueries, AUTOMATION_ACTOR } from './queries.ts';
export { startCommandResults, applyResults, type ResultsDeps } from './results.ts';
export { startAutomationLoop, type AutomationStatus } from './loop.ts';
export { runRequery, runRequeryJob, requeryLimit, requeryScheduledJob, REQUERY_JOB, type RequeryDeps, type RequeryJobDeps } from './requery.ts';
export { createManualCommands, type ManualCommands, type ManualCommandsDeps, type ManualResult } from './manual.ts';
