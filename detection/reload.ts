import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log/index.ts';
import { formatProblem, loadRuleSet, type RuleSet } from '../rules/index.ts';
import type { LoadRuleSetOptions } from '../rules/load.ts';

export interface RuleReloader {
  /** Reloads now (also what a file change triggers); resolves with whether the new set was taken. */
  reload(): Promise<boolean>;
  stop(): void;
}

/**
 * Hot reload for the risk team: watches the rules folder and the feature catalog, and on a
 * change loads and validates everything again. A valid set replaces the running one; an
 * invalid edit is rejected with every problem logged (file, JSON path, fix) and the previous
 * rules keep running. Changes are debounced, since editors write files in several steps.
 */
export function watchRules(deps: {
  paths: Required<LoadRuleSetOptions>;
  logger: Logger;
  onChange: (ruleSet: RuleSet) => void;
  current: () => RuleSet;
  debounceMs?: number;
}): RuleReloader {
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];

  async function reload(): Promise<boolean> {
    const result = await loadRuleSet(deps.paths);
    if (!result.ok) {
      deps.logger.error('rule change rejected: the previous rules keep running', {
        problems: result.problems.map((p) => formatProblem(p)),
      });
      return false;
    }
    if (result.ruleSet.version === deps.current().version) return false;
    deps.onChange(result.ruleSet);
    deps.logger.info('rules reloaded', {
      version: result.ruleSet.version,
      rules: result.ruleSet.rules.filter((r) => r.enabled).map((r) => `${r.id}@${r.version}`),
    });
    return true;
  }

  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload().catch((err: unknown) => deps.logger.error('rule reload failed', { err })), deps.debounceMs ?? 300);
  };
  for (const path of [deps.paths.rulesPath, deps.paths.featuresPath]) {
    try {
      watchers.push(watch(path, { persistent: false }, schedule));
    } catch (err) {
      deps.logger.warn('cannot watch rules for changes; restart to pick up edits', { path, err });
    }
  }
  return {
    reload,
    stop() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
