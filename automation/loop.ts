import type { Logger } from '../log/index.ts';
import type { Automation } from './automation.ts';

/** The automation loop's health, for /healthz and the metrics. */
export interface AutomationStatus {
  mode: string;
  paused: boolean;
  passes: number;
  failedInARow: number;
  lastFailure: string | null;
}

/**
 * Runs automation passes every `everyMs` while `isLeader()`; a failed pass is repeated by the
 * next. (The scheduled re-check is the `requery` job, run by the jobs leader: requery.ts.)
 */
export function startAutomationLoop(deps: { automation: Automation; isLeader: () => boolean; everyMs: number; logger: Logger; mode: string }) {
  const pass = () => deps.automation.run();
  const status: AutomationStatus = { mode: deps.mode, paused: false, passes: 0, failedInARow: 0, lastFailure: null };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const loop = () => {
    if (stopped) return;
    running = (deps.isLeader() ? pass() : Promise.resolve(null))
      .then(
        (r) => {
          if (r) Object.assign(status, { paused: r.paused, passes: status.passes + 1, failedInARow: 0 });
        },
        (err: unknown) => {
          status.failedInARow++;
          status.lastFailure = err instanceof Error ? err.message : String(err);
          deps.logger.warn('automation pass failed; it is repeated', { err });
        },
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, deps.everyMs);
      });
  };
  loop();
  return {
    status: (): AutomationStatus => ({ ...status }),
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
