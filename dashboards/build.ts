import { dashboard, panelQueries, type DashboardSpec, type QueryVariable } from './model.ts';
import { paymentOutcomesSpec } from './src/payment-outcomes.ts';
import { pipelineHealthSpec } from './src/pipeline-health.ts';
import { reconciliationSpec } from './src/reconciliation.ts';
import { retryRefundsSpec } from './src/retry-refunds.ts';
import { riskCasesSpec } from './src/risk-cases.ts';

/** The database the provisioned dashboards read (the data source's default database too). */
export const DEFAULT_DATABASE = 'paysentinel';

/** Every provisioned dashboard, reading `database`, with the JSON file it is written to. */
export function dashboardSpecs(database: string): { file: string; spec: DashboardSpec }[] {
  return [
    { file: 'payment-outcomes.json', spec: paymentOutcomesSpec(database) },
    { file: 'pipeline-health.json', spec: pipelineHealthSpec(database) },
    { file: 'retry-refunds.json', spec: retryRefundsSpec(database) },
    { file: 'risk-cases.json', spec: riskCasesSpec(database) },
    { file: 'reconciliation.json', spec: reconciliationSpec(database) },
  ];
}

/** File name -> the exact JSON text committed under dashboards/json. */
export function dashboardFiles(database = DEFAULT_DATABASE): Map<string, string> {
  return new Map(dashboardSpecs(database).map(({ file, spec }) => [file, JSON.stringify(dashboard(spec), null, 2) + '\n']));
}

/** One SQL query a dashboard sends: a panel target or a variable's query. */
export interface DashboardQuery {
  /** e.g. "paysentinel-payment-outcomes / Events per second / A" */
  name: string;
  sql: string;
  /** What the query must return: a time series, or these table columns; none for variables. */
  shape: { kind: 'timeseries' } | { kind: 'table'; columns: string[] } | { kind: 'variable' };
  variables: QueryVariable[];
}

/** Every query of every dashboard (macros not expanded), built as the generated JSON holds them. */
export function dashboardQueries(database: string): DashboardQuery[] {
  return dashboardSpecs(database).flatMap(({ spec }) => {
    const variables = spec.variables;
    return [
      ...variables.map((v) => ({ name: `${spec.uid} / variable ${v.name}`, sql: variableQuery(v), shape: { kind: 'variable' as const }, variables })),
      ...spec.panels.flatMap((panel) =>
        panelQueries(panel).map((target) => {
          const t = target.build();
          return {
            name: `${spec.uid} / ${panel.title} / ${t.refId}`,
            sql: t.rawSql,
            shape: panel.type === 'timeseries' ? { kind: 'timeseries' as const } : { kind: 'table' as const, columns: panel.columns ?? [] },
            variables,
          };
        }),
      ),
    ];
  });
}

function variableQuery(variable: QueryVariable): string {
  if (typeof variable.query !== 'string') throw new Error(`Variable ${variable.name} has no SQL query`);
  return variable.query;
}
