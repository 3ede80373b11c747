import type { Case, CaseStore } from '../cases/index.ts';
import type { Logger } from '../log/index.ts';
import { createRuleEvaluator, type Hit, type RuleEvaluator, type RuleSet } from '../rules/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import type { BreakKind } from './match.ts';
import { formatMinor } from './money.ts';
import { formatPeriod } from './period.ts';
import { breakStatesQuery, fileNamesQuery, latestRunsQuery, runBreaksQuery, type BreakStateFilter, type PeriodKey } from './reconcile-queries.ts';
import { breakJson } from './report.ts';

/**
 * Statement breaks become cases through the rule engine, like every other finding. A pass reads
 * the latest reconciliation run of each recent period; a break seen for the first time counts in
 * its order's statement facts (`order_charged_not_recorded`, ..., features.json "statements"),
 * the rules on those facts are evaluated for the order, and their hits go to the case store the
 * detector uses, with the breaks as evidence. Every break is recorded in statement_break_cases
 * once evaluated, so a re-import or a re-run never opens a second case for it.
 *
 * A break missing from its period's latest run (a late event arrived and the re-run matched the
 * line) turns `cleared`, and its case shows it: resolved as no_action_needed once every break
 * behind it has cleared (support needs to do nothing any more), otherwise a note in its history.
 * Resolving, rather than adding a hit, keeps a case that needs no action out of the inbox.
 */

/** Periods ending longer ago than this are not looked at. @default 31 days */
export const BREAK_CASES_LOOKBACK_MS = 31 * 86_400_000;
/** Breaks read per period and pass; a period with more is warned about (the rest are never dropped silently). */
export const MAX_BREAKS_PER_PERIOD = 50_000;
/** Breaks listed in a case's evidence; the count facts still count them all. */
export const MAX_EVIDENCE_BREAKS = 20;
/** How often the pipeline's loop runs a pass. */
export const BREAK_CASES_EVERY_MS = 10_000;
/** Who the case history names for what this stage does. */
export const CHANGED_BY = 'statements';

export interface BreakCasesDeps {
  clickhouse: ClickHouseClient;
  database: string;
  cases: Pick<CaseStore, 'applyHits' | 'get' | 'setStatus' | 'ofEntities'>;
  logger: Logger;
}

/** What one pass did. */
export interface BreakCasesPass {
  periods: number;
  /** Breaks seen for the first time (each evaluated once). */
  newBreaks: number;
  /** Breaks that disappeared from their period's latest run. */
  cleared: number;
  opened: Case[];
  updated: Case[];
  /** Cases resolved because every break behind them cleared. */
  resolved: string[];
}

type Row = Record<string, unknown>;

/** One break as evidence on a case: both sides, amounts in major units, the statement's file and line. */
export type BreakEvidence = Record<string, unknown> & { break_id: string; kind: BreakKind; order_id: string };

interface BreakState {
  key: PeriodKey;
  breakId: string;
  state: 'open' | 'cleared';
  kind: BreakKind;
  orderId: string;
  caseId: string;
  ruleId: string;
  evidence: BreakEvidence;
}

const periodId = (k: PeriodKey) => `${k.channel}|${k.period.fromMs}|${k.period.toMs}`;

/** The entity a break's case is about: its order, or its transaction when the statement gave no order id. */
export const breakEntityId = (b: { order_id: string; transaction_id?: unknown }): string =>
  b.order_id !== '' ? b.order_id : `transaction ${String(b.transaction_id ?? '')}`;

/** A statement_breaks row (breakJson) with the file's name and amounts in major units, as a case shows it. */
export function breakEvidence(row: Row, fileNames: ReadonlyMap<string, string>): BreakEvidence {
  const b = breakJson(row);
  const major = (side: Row | null) => (side ? { ...side, amount: formatMinor(Number(side.amount_minor), String(side.currency)) } : null);
  const statement = b.statement as Row | null;
  return {
    ...b,
    period: formatPeriod({ fromMs: Number(row.from_s) * 1000, toMs: Number(row.to_s) * 1000 }),
    statement: statement ? { file: fileNames.get(String(statement.file_hash)) ?? '', ...major(statement) } : null,
    ours: major(b.ours as Row | null),
    amount_at_stake: formatMinor(Number(b.amount_at_stake_minor), String(b.currency)),
  } as unknown as BreakEvidence;
}

/**
 * The statement facts of one order: per statement fact of the catalog, how many of the order's
 * open breaks are of its kind.
 */
export function statementFacts(ruleSet: RuleSet, open: readonly { kind: string }[]): Record<string, number> {
  const facts: Record<string, number> = {};
  for (const info of ruleSet.catalog.facts.values()) {
    if (info.kind === 'statement') facts[info.id] = open.filter((b) => b.kind === info.def.break_kind).length;
  }
  return facts;
}

/** The break kinds a rule reads (through its statement facts). */
function kindsRead(ruleSet: RuleSet, facts: readonly string[]): Set<string> {
  const kinds = new Set<string>();
  for (const id of facts) {
    const info = ruleSet.catalog.facts.get(id);
    if (info?.kind === 'statement') kinds.add(info.def.break_kind);
  }
  return kinds;
}

/**
 * Decides one order's hits: the rules on statement facts that hold, kept only when they read a
 * kind of which the order has a new break (an old break never opens a case again, even after its
 * case was resolved), with the order's open breaks of those kinds as evidence. Pure apart from
 * the evaluator.
 */
export async function hitsForOrder(
  ruleSet: RuleSet,
  evaluator: RuleEvaluator,
  entityId: string,
  open: readonly BreakEvidence[],
  fresh: ReadonlySet<string>,
): Promise<Hit[]> {
  const facts = statementFacts(ruleSet, open);
  const rules = new Map(ruleSet.rules.map((r) => [r.id, r]));
  const freshKinds = new Set<string>(open.filter((b) => fresh.has(b.break_id)).map((b) => b.kind));
  const out: Hit[] = [];
  for (const hit of await evaluator.evaluate('order', entityId, facts)) {
    const kinds = kindsRead(ruleSet, rules.get(hit.ruleId)?.facts ?? []);
    if (![...kinds].some((k) => freshKinds.has(k))) continue;
    const breaks = open.filter((b) => kinds.has(b.kind)).slice(-MAX_EVIDENCE_BREAKS);
    // The case shows the breaks themselves beside the counts (evidence is JSON on the case).
    out.push({ ...hit, evidence: { ...hit.evidence, breaks } as unknown as Hit['evidence'] });
  }
  return out;
}

export function createBreakCases(deps: BreakCasesDeps) {
  /** Per period, the run version whose breaks were last turned into cases. */
  const done = new Map<string, string>();
  let evaluatorFor: { ruleSet: RuleSet; evaluator: RuleEvaluator } | undefined;
  const table = ident(deps.database, 'statement_break_cases').text;

  const states = async (filter: BreakStateFilter, what: string): Promise<BreakState[]> => {
    const list = 'periods' in filter ? filter.periods : 'orders' in filter ? filter.orders : filter.cases;
    const out: BreakState[] = [];
    // In slices: a statement's worth of ids must not build one statement too big to parse.
    for (let i = 0; i < list.length; i += 1000) {
      const slice = list.slice(i, i + 1000);
      const part: BreakStateFilter =
        'periods' in filter ? { periods: slice as PeriodKey[] } : 'orders' in filter ? { orders: slice as string[] } : { cases: slice as string[] };
      for (const r of await queryRows<Row>(deps.clickhouse, breakStatesQuery(deps.database, part), what)) {
        out.push({
          key: { channel: String(r.b_channel), period: { fromMs: Number(r.b_from_s) * 1000, toMs: Number(r.b_to_s) * 1000 } },
          breakId: String(r.b_id),
          state: r.b_state === 'cleared' ? 'cleared' : 'open',
          kind: String(r.b_kind) as BreakKind,
          orderId: String(r.b_order),
          caseId: String(r.b_case),
          ruleId: String(r.b_rule),
          evidence: JSON.parse(String(r.b_evidence || '{}')) as BreakEvidence,
        });
      }
    }
    return out;
  };

  const record = async (rows: readonly { s: BreakState; runVersion: string }[], version: number) => {
    for (let i = 0; i < rows.length; i += 10_000) {
      await insertRows(
        deps.clickhouse,
        table,
        rows.slice(i, i + 10_000).map(({ s, runVersion }) => ({
          channel: s.key.channel,
          period_from: toDateTimeText(s.key.period.fromMs),
          period_to: toDateTimeText(s.key.period.toMs),
          break_id: s.breakId,
          version,
          state: s.state,
          kind: s.kind,
          order_id: s.orderId,
          case_id: s.caseId,
          rule_id: s.ruleId,
          run_version: Number(runVersion),
          evidence: JSON.stringify(s.evidence),
        })),
        'record statement break cases',
      );
    }
  };

  return {
    /**
     * One pass at `nowMs` with the rules in force: every period whose latest run changed since
     * the last pass (all recent periods on the first). Idempotent: a second pass over the same
     * runs changes nothing, also after a restart (the state is in ClickHouse).
     */
    async pass(ruleSet: RuleSet, nowMs: number): Promise<BreakCasesPass> {
      if (evaluatorFor?.ruleSet !== ruleSet) evaluatorFor = { ruleSet, evaluator: createRuleEvaluator(ruleSet, 'statements') };
      const { evaluator } = evaluatorFor;
      const result: BreakCasesPass = { periods: 0, newBreaks: 0, cleared: 0, opened: [], updated: [], resolved: [] };
      const runs = (await queryRows<Row>(deps.clickhouse, latestRunsQuery(deps.database, nowMs - BREAK_CASES_LOOKBACK_MS), 'latest statement runs'))
        .map((r) => ({ key: { channel: String(r.channel), period: { fromMs: Number(r.from_s) * 1000, toMs: Number(r.to_s) * 1000 } }, version: String(r.v) }))
        .filter((r) => done.get(periodId(r.key)) !== r.version);
      if (runs.length === 0) return result;
      result.periods = runs.length;

      // The breaks of each run, and what was recorded about the breaks of those periods.
      const current = new Map<string, { key: PeriodKey; version: string; evidence: BreakEvidence }>();
      for (const run of runs) {
        const rows = await queryRows<Row>(deps.clickhouse, runBreaksQuery(deps.database, run.key, run.version, MAX_BREAKS_PER_PERIOD + 1), 'read run breaks');
        if (rows.length > MAX_BREAKS_PER_PERIOD)
          deps.logger.warn('statement period has more breaks than are turned into cases per pass; the rest wait for a re-run', {
            channel: run.key.channel,
            period: formatPeriod(run.key.period),
            limit: MAX_BREAKS_PER_PERIOD,
          });
        const hashes = [
          ...new Set(
            rows
              .slice(0, MAX_BREAKS_PER_PERIOD)
              .map((r) => String(r.statement_file_hash))
              .filter((h) => h !== ''),
          ),
        ];
        const names = new Map<string, string>();
        if (hashes.length)
          for (const r of await queryRows<Row>(deps.clickhouse, fileNamesQuery(deps.database, hashes), 'statement file names'))
            names.set(String(r.h), String(r.name));
        for (const r of rows.slice(0, MAX_BREAKS_PER_PERIOD))
          current.set(`${periodId(run.key)}|${String(r.break_id)}`, { key: run.key, version: run.version, evidence: breakEvidence(r, names) });
      }
      const known = new Map((await states({ periods: runs.map((r) => r.key) }, 'statement break states')).map((s) => [`${periodId(s.key)}|${s.breakId}`, s]));
      const fresh = [...current].filter(([id]) => known.get(id)?.state !== 'open').map(([, b]) => b);
      const gone = [...known].filter(([id, s]) => s.state === 'open' && !current.has(id)).map(([, s]) => s);
      result.newBreaks = fresh.length;
      result.cleared = gone.length;

      // New breaks: evaluate each affected order on all its open breaks (other periods' too).
      const version = nowMs;
      if (fresh.length > 0) {
        const entityOf = (b: BreakEvidence) => breakEntityId(b);
        const orders = [...new Set(fresh.map((b) => b.evidence.order_id).filter((o) => o !== ''))];
        const others = orders.length ? await states({ orders }, 'open breaks of orders') : [];
        const freshIds = new Set(fresh.map((b) => b.evidence.break_id));
        const openOf = new Map<string, BreakEvidence[]>();
        const add = (entity: string, e: BreakEvidence) => {
          const list = openOf.get(entity) ?? [];
          if (!list.some((x) => x.break_id === e.break_id && x.period === e.period)) list.push(e);
          openOf.set(entity, list);
        };
        const goneIds = new Set(gone.map((s) => `${periodId(s.key)}|${s.breakId}`));
        for (const s of others) if (s.state === 'open' && !goneIds.has(`${periodId(s.key)}|${s.breakId}`)) add(entityOf(s.evidence), s.evidence);
        for (const b of fresh) add(entityOf(b.evidence), b.evidence);
        const hits: Hit[] = [];
        for (const entity of new Set(fresh.map((b) => entityOf(b.evidence))))
          hits.push(...(await hitsForOrder(ruleSet, evaluator, entity, openOf.get(entity)!, freshIds)));
        const applied = hits.length ? await deps.cases.applyHits(hits, nowMs) : { opened: [], updated: [] };
        result.opened.push(...applied.opened);
        result.updated.push(...applied.updated);
        // The case each new break went to: the case of the rule that read its kind (none when no rule held).
        const caseOf = new Map<string, Case>();
        for (const c of [...applied.opened, ...applied.updated]) caseOf.set(`${c.rule_id}|${c.entity_id}`, c);
        const unchanged = hits.filter((h) => !caseOf.has(`${h.ruleId}|${h.entityId}`));
        if (unchanged.length)
          for (const c of await deps.cases.ofEntities('order', [...new Set(unchanged.map((h) => h.entityId))]))
            if (!caseOf.has(`${c.rule_id}|${c.entity_id}`)) caseOf.set(`${c.rule_id}|${c.entity_id}`, c);
        const hitOf = (b: BreakEvidence) =>
          hits.find((h) => h.entityId === entityOf(b) && (h.evidence.breaks as BreakEvidence[] | undefined)?.some((x) => x.break_id === b.break_id));
        await record(
          fresh.map((b) => {
            const hit = hitOf(b.evidence);
            const c = hit ? caseOf.get(`${hit.ruleId}|${hit.entityId}`) : undefined;
            return {
              s: {
                key: b.key,
                breakId: b.evidence.break_id,
                state: 'open' as const,
                kind: b.evidence.kind,
                orderId: b.evidence.order_id,
                caseId: c?.case_id ?? '',
                ruleId: hit?.ruleId ?? '',
                evidence: b.evidence,
              },
              runVersion: b.version,
            };
          }),
          version,
        );
        for (const c of applied.opened)
          deps.logger.info('case opened', { case_id: c.case_id, rule: c.rule_id, entity: `${c.entity_type} ${c.entity_id}`, severity: c.severity });
      }

      // Cleared breaks: recorded, and shown on their case.
      if (gone.length > 0) {
        const runOf = new Map(runs.map((r) => [periodId(r.key), r.version]));
        await record(
          gone.map((s) => ({ s: { ...s, state: 'cleared' as const }, runVersion: runOf.get(periodId(s.key)) ?? '0' })),
          version,
        );
        const caseIds = [...new Set(gone.map((s) => s.caseId).filter((id) => id !== ''))];
        const stillOpen = caseIds.length ? (await states({ cases: caseIds }, 'breaks of cases')).filter((s) => s.state === 'open') : [];
        for (const caseId of caseIds) {
          const c = await deps.cases.get(caseId);
          if (!c || c.status === 'resolved') continue;
          const cleared = gone.filter((s) => s.caseId === caseId);
          const left = stillOpen.filter((s) => s.caseId === caseId);
          const what = cleared.map((s) => `${s.kind} ${formatPeriod(s.key.period)} (${s.evidence.detail ?? s.breakId})`).join('; ');
          if (left.length === 0) {
            await deps.cases.setStatus(
              caseId,
              'resolved',
              CHANGED_BY,
              `The statement break${cleared.length === 1 ? '' : 's'} behind this case cleared: ` +
                `the latest reconciliation matched ${cleared.length === 1 ? 'it' : 'them'} (${what}).`,
              nowMs,
              'no_action_needed',
            );
            result.resolved.push(caseId);
          } else {
            await deps.cases.setStatus(
              caseId,
              c.status,
              CHANGED_BY,
              `${cleared.length} statement break${cleared.length === 1 ? '' : 's'} cleared (${what}); ${left.length} still open.`,
              nowMs,
            );
          }
        }
      }
      for (const run of runs) done.set(periodId(run.key), run.version);
      deps.logger.info('statement breaks turned into cases', {
        periods: result.periods,
        new_breaks: result.newBreaks,
        cleared: result.cleared,
        opened: result.opened.length,
        updated: result.updated.length,
        resolved: result.resolved.length,
      });
      return result;
    },

    /** Leadership lost: the next pass looks at every recent period again (nothing is repeated: the state is stored). */
    reset(): void {
      done.clear();
    },
  };
}
export type BreakCases = ReturnType<typeof createBreakCases>;

/**
 * The pipeline's loop: a pass every `everyMs` while this instance leads detection, with the rules
 * detection has in force (hot reload included). A failed pass is logged and repeated; it never
 * stops the process.
 */
export function startBreakCases(deps: BreakCasesDeps & { ruleSet: () => RuleSet; isLeader: () => boolean; everyMs?: number; now?: () => number }): {
  stop(): Promise<void>;
} {
  const breakCases = createBreakCases(deps);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const loop = () => {
    if (stopped) return;
    running = (async () => {
      if (!deps.isLeader()) return breakCases.reset();
      try {
        await breakCases.pass(deps.ruleSet(), (deps.now ?? Date.now)());
      } catch (err) {
        deps.logger.warn('turning statement breaks into cases failed; the next pass repeats it', { err });
      }
    })().finally(() => {
      if (!stopped) timer = setTimeout(loop, deps.everyMs ?? BREAK_CASES_EVERY_MS);
    });
  };
  loop();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
