/**
 * A small typed model of the Grafana dashboard JSON this project provisions (schemaVersion 41,
 * Grafana 12), and helpers that fill in the parts every panel shares. Only the fields we use are
 * modelled; Grafana fills in defaults for the rest when it loads the file.
 */

/** The provisioned data source (dashboards/provisioning/datasources/clickhouse.yaml). */
export const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'paysentinel-clickhouse' } as const;
export type DataSourceRef = typeof DATASOURCE;

export const SCHEMA_VERSION = 41;

export type PanelType = 'timeseries' | 'table' | 'stat' | 'barchart' | 'bargauge' | 'piechart';

/** grafana-clickhouse-datasource (sqlds) query formats: 0 time series (long frames become wide), 1 table. */
export type QueryFormat = 0 | 1;

export interface ClickHouseTarget {
  refId: string;
  datasource: DataSourceRef;
  editorType: 'sql';
  queryType: 'timeSeries' | 'table';
  format: QueryFormat;
  rawSql: string;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Panel {
  id: number;
  type: PanelType;
  title: string;
  description?: string;
  datasource: DataSourceRef;
  gridPos: GridPos;
  targets: ClickHouseTarget[];
  fieldConfig: { defaults: { unit?: string; min?: number; max?: number; decimals?: number; custom?: Record<string, unknown> }; overrides: unknown[] };
  options: Record<string, unknown>;
}

export interface QueryVariable {
  type: 'query';
  name: string;
  label: string;
  datasource: DataSourceRef;
  /** The plugin runs variable queries as SQL, with macros expanded. */
  query: string;
  definition: string;
  /** 2: refresh when the time range changes. */
  refresh: 1 | 2;
  multi: boolean;
  includeAll: boolean;
  /**
   * Used verbatim (Grafana does not format a custom all value) wherever the variable is
   * referenced as ${name:singlequote}, so `'__all' IN (${name:singlequote})` is true for All.
   */
  allValue: string;
  current: { text: string[]; value: string[] };
  sort: number;
  options: unknown[];
}

export interface Dashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  timezone: 'utc';
  editable: boolean;
  graphTooltip: 1;
  schemaVersion: number;
  version: number;
  refresh: string;
  time: { from: string; to: string };
  timepicker: { refresh_intervals: string[] };
  templating: { list: QueryVariable[] };
  annotations: { list: unknown[] };
  links: unknown[];
  panels: Panel[];
}

/** The value a variable set to All contributes through ${name:singlequote}. */
export const ALL_VALUE = "'__all'";

/** A filter on `column` by a multi-value variable; a no-op when the variable is All. */
export const variableFilter = (column: string, variable: string): string =>
  `('__all' IN (\${${variable}:singlequote}) OR ${column} IN (\${${variable}:singlequote}))`;

export function queryVariable(name: string, label: string, query: string): QueryVariable {
  return {
    type: 'query',
    name,
    label,
    datasource: DATASOURCE,
    query,
    definition: query,
    refresh: 2,
    multi: true,
    includeAll: true,
    allValue: ALL_VALUE,
    current: { text: ['All'], value: ['$__all'] },
    sort: 1,
    options: [],
  };
}

export interface PanelSpec {
  type: PanelType;
  title: string;
  description: string;
  /** Width and height in grid units (24 columns). */
  w: number;
  h: number;
  /** One SQL query per target, refIds A, B, ... */
  sql: string[];
  /**
   * Columns every target must return (checked against ClickHouse by the tests, not written to
   * the JSON). Time series need `time` and a numeric column, which the tests check anyway.
   */
  columns?: string[];
  unit?: string;
  min?: number;
  max?: number;
  decimals?: number;
  options?: Record<string, unknown>;
  custom?: Record<string, unknown>;
  /** Per-column units where a panel mixes them, e.g. a duration next to a count. */
  unitsByColumn?: Record<string, string>;
}

/**
 * Lays panels out left to right, wrapping at 24 columns, and numbers them from 1 so every
 * panel id is unique and stable within its dashboard.
 */
export function layout(specs: PanelSpec[]): Panel[] {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return specs.map((spec, i) => {
    if (x + spec.w > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const gridPos = { x, y, w: spec.w, h: spec.h };
    x += spec.w;
    rowHeight = Math.max(rowHeight, spec.h);
    const isSeries = spec.type === 'timeseries';
    return {
      id: i + 1,
      type: spec.type,
      title: spec.title,
      description: spec.description,
      datasource: DATASOURCE,
      gridPos,
      targets: spec.sql.map((rawSql, t) => ({
        refId: String.fromCharCode(65 + t),
        datasource: DATASOURCE,
        editorType: 'sql' as const,
        queryType: isSeries ? ('timeSeries' as const) : ('table' as const),
        format: isSeries ? (0 as const) : (1 as const),
        rawSql,
      })),
      fieldConfig: {
        defaults: {
          ...(spec.unit !== undefined && { unit: spec.unit }),
          ...(spec.min !== undefined && { min: spec.min }),
          ...(spec.max !== undefined && { max: spec.max }),
          ...(spec.decimals !== undefined && { decimals: spec.decimals }),
          ...(spec.custom !== undefined && { custom: spec.custom }),
        },
        overrides: Object.entries(spec.unitsByColumn ?? {}).map(([name, unit]) => ({
          matcher: { id: 'byName', options: name },
          properties: [{ id: 'unit', value: unit }],
        })),
      },
      options: spec.options ?? defaultOptions(spec.type),
    };
  });
}

function defaultOptions(type: PanelType): Record<string, unknown> {
  switch (type) {
    case 'timeseries':
      return {
        legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['mean', 'max', 'lastNotNull'] },
        tooltip: { mode: 'multi', sort: 'desc' },
      };
    case 'stat':
      return { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: 'auto' };
    case 'table':
      return { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } };
    case 'bargauge':
      return { orientation: 'horizontal', displayMode: 'gradient', reduceOptions: { calcs: ['lastNotNull'], fields: '', values: true }, showUnfilled: true };
    default:
      return {};
  }
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  /** Default time range, e.g. now-6h. */
  from: string;
  refresh: string;
  variables: QueryVariable[];
  panels: PanelSpec[];
}

export function dashboard(spec: DashboardSpec): Dashboard {
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['paysentinel', ...spec.tags],
    timezone: 'utc',
    editable: false,
    graphTooltip: 1,
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    refresh: spec.refresh,
    time: { from: spec.from, to: 'now' },
    timepicker: { refresh_intervals: ['10s', '30s', '1m', '5m', '15m', '1h'] },
    templating: { list: spec.variables },
    annotations: { list: [] },
    links: [{ type: 'dashboards', tags: ['paysentinel'], asDropdown: true, title: 'paysentinel', includeVars: true, keepTime: true }],
    panels: layout(spec.panels),
  };
}
