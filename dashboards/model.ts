/**
 * The dashboards as code: the declarative specs in dashboards/src/*.ts are built into Grafana
 * dashboard JSON (schemaVersion 41, Grafana 12) with the typed builders of Grafana's own
 * foundation SDK, which fill in the panel and dashboard defaults Grafana's schema gives them.
 * The ClickHouse data source query is not in the SDK, so it is typed here as the SDK allows
 * for custom queries.
 */
import * as barchart from '@grafana/grafana-foundation-sdk/barchart';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as sdk from '@grafana/grafana-foundation-sdk/dashboard';
import * as piechart from '@grafana/grafana-foundation-sdk/piechart';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

/** The provisioned data source (dashboards/provisioning/datasources/clickhouse.yaml). */
export const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'paysentinel-clickhouse' } as const;
export type DataSourceRef = typeof DATASOURCE;

export type PanelType = 'timeseries' | 'table' | 'stat' | 'barchart' | 'bargauge' | 'piechart';

/** grafana-clickhouse-datasource (sqlds) query formats: 0 time series (long frames become wide), 1 table. */
export type QueryFormat = 0 | 1;

/** A grafana-clickhouse-datasource SQL query, a data query variant the SDK does not ship. */
export interface ClickHouseQuery extends cog.Dataquery {
  refId: string;
  datasource: DataSourceRef;
  editorType: 'sql';
  queryType: 'timeSeries' | 'table';
  format: QueryFormat;
  rawSql: string;
}

/** Builds a ClickHouse query as a target the SDK's panel builders accept. */
export class ClickHouseQueryBuilder implements cog.Builder<cog.Dataquery> {
  private readonly internal: ClickHouseQuery;

  constructor(refId: string, rawSql: string, kind: 'timeSeries' | 'table') {
    this.internal = {
      refId,
      datasource: DATASOURCE,
      editorType: 'sql',
      queryType: kind,
      format: kind === 'timeSeries' ? 0 : 1,
      rawSql,
      // Marks the type as a data query variant for the SDK; JSON.stringify leaves functions out.
      _implementsDataqueryVariant() {},
    };
  }

  build(): ClickHouseQuery {
    return this.internal;
  }
}

/** A dashboard variable, as the SDK's query variable builder makes it. */
export type QueryVariable = sdk.VariableModel;

/** The value a variable set to All contributes through ${name:singlequote}. */
export const ALL_VALUE = "'__all'";

/** A filter on `column` by a multi-value variable; a no-op when the variable is All. */
export const variableFilter = (column: string, variable: string): string =>
  `('__all' IN (\${${variable}:singlequote}) OR ${column} IN (\${${variable}:singlequote}))`;

/** A multi-value variable whose values the plugin's SQL `query` (macros expanded) returns, All by default. */
export function queryVariable(name: string, label: string, query: string): QueryVariable {
  return (
    new sdk.QueryVariableBuilder(name)
      .label(label)
      .datasource(DATASOURCE)
      .query(query)
      .definition(query)
      .refresh(sdk.VariableRefresh.OnTimeRangeChanged)
      .multi(true)
      .includeAll(true)
      // Used verbatim (Grafana does not format a custom all value) wherever the variable is
      // referenced as ${name:singlequote}, so `'__all' IN (${name:singlequote})` is true for All.
      .allValue(ALL_VALUE)
      .current({ text: ['All'], value: ['$__all'] })
      .sort(sdk.VariableSort.AlphabeticalAsc)
      .options([])
      .build()
  );
}

/** The reduction of a stat or bar gauge panel, as Grafana's JSON spells it. */
export interface ReduceOptions {
  calcs: string[];
  fields: string;
  values: boolean;
}

/** Options a stat panel may set, spelt as in Grafana's JSON (the SDK's enums hold these strings). */
export interface StatOptions {
  reduceOptions?: ReduceOptions;
  colorMode?: `${common.BigValueColorMode}`;
  graphMode?: `${common.BigValueGraphMode}`;
  textMode?: `${common.BigValueTextMode}`;
}

/** How a time series panel draws its series. */
export interface SeriesStyle {
  drawStyle?: `${common.GraphDrawStyle}`;
  fillOpacity?: number;
  stacking?: { mode: `${common.StackingMode}`; group: string };
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
  /** Stat panels only: replaces the defaults option by option. */
  options?: StatOptions;
  /** Time series panels only. */
  custom?: SeriesStyle;
  /** Per-column units where a panel mixes them, e.g. a duration next to a count. */
  unitsByColumn?: Record<string, string>;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Lays panels out left to right, wrapping at 24 columns. (The SDK's own layout wraps only after
 * a row overflows, so the positions are computed here and given to it.)
 */
export function layout(specs: readonly PanelSpec[]): GridPos[] {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return specs.map((spec) => {
    if (x + spec.w > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const gridPos = { x, y, w: spec.w, h: spec.h };
    x += spec.w;
    rowHeight = Math.max(rowHeight, spec.h);
    return gridPos;
  });
}

/** The targets of a panel, refIds A, B, ... */
export function panelQueries(spec: PanelSpec): ClickHouseQueryBuilder[] {
  const kind = spec.type === 'timeseries' ? 'timeSeries' : 'table';
  return spec.sql.map((rawSql, t) => new ClickHouseQueryBuilder(String.fromCharCode(65 + t), rawSql, kind));
}

/** One of the SDK's string enums, from the string a spec spells its member with (checked). */
function member<E extends string>(values: Record<string, E>, value: string): E {
  const found = Object.values(values).find((v) => v === value);
  if (found === undefined) throw new Error(`"${value}" is not one of ${Object.values(values).join(', ')}`);
  return found;
}

const reduce = (o: ReduceOptions): common.ReduceDataOptionsBuilder => new common.ReduceDataOptionsBuilder().calcs(o.calcs).fields(o.fields).values(o.values);

type AnyPanelBuilder = timeseries.PanelBuilder | table.PanelBuilder | stat.PanelBuilder | barchart.PanelBuilder | bargauge.PanelBuilder | piechart.PanelBuilder;

/** The parts every panel shares: id, text, place, data source, targets, units. */
function withCommon<B extends AnyPanelBuilder>(builder: B, spec: PanelSpec, id: number, gridPos: GridPos): B {
  builder.id(id).title(spec.title).description(spec.description).datasource(DATASOURCE).gridPos(gridPos).targets(panelQueries(spec));
  if (spec.unit !== undefined) builder.unit(spec.unit);
  if (spec.min !== undefined) builder.min(spec.min);
  if (spec.max !== undefined) builder.max(spec.max);
  if (spec.decimals !== undefined) builder.decimals(spec.decimals);
  for (const [name, unit] of Object.entries(spec.unitsByColumn ?? {})) builder.overrideByName(name, [{ id: 'unit', value: unit }]);
  return builder;
}

function timeseriesPanel(spec: PanelSpec): timeseries.PanelBuilder {
  const builder = new timeseries.PanelBuilder()
    .legend(
      new common.VizLegendOptionsBuilder()
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .showLegend(true)
        .calcs(['mean', 'max', 'lastNotNull']),
    )
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
  const style = spec.custom ?? {};
  if (style.drawStyle !== undefined) builder.drawStyle(member(common.GraphDrawStyle, style.drawStyle));
  if (style.fillOpacity !== undefined) builder.fillOpacity(style.fillOpacity);
  if (style.stacking !== undefined)
    builder.stacking(new common.StackingConfigBuilder().mode(member(common.StackingMode, style.stacking.mode)).group(style.stacking.group));
  return builder;
}

function statPanel(spec: PanelSpec): stat.PanelBuilder {
  const o = spec.options ?? {};
  return new stat.PanelBuilder()
    .reduceOptions(reduce(o.reduceOptions ?? { calcs: ['lastNotNull'], fields: '', values: false }))
    .colorMode(member(common.BigValueColorMode, o.colorMode ?? 'value'))
    .graphMode(member(common.BigValueGraphMode, o.graphMode ?? 'none'))
    .textMode(member(common.BigValueTextMode, o.textMode ?? 'auto'));
}

function tablePanel(): table.PanelBuilder {
  return new table.PanelBuilder()
    .showHeader(true)
    .cellHeight(common.TableCellHeight.Sm)
    .footer(new common.TableFooterOptionsBuilder().show(false).reducer(['sum']));
}

function bargaugePanel(): bargauge.PanelBuilder {
  return new bargauge.PanelBuilder()
    .orientation(common.VizOrientation.Horizontal)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .reduceOptions(reduce({ calcs: ['lastNotNull'], fields: '', values: true }))
    .showUnfilled(true);
}

/** The SDK builder for one panel, with the options our dashboards use for its type. */
function panel(spec: PanelSpec, id: number, gridPos: GridPos): cog.Builder<sdk.Panel> {
  if (spec.options !== undefined && spec.type !== 'stat') throw new Error(`${spec.title}: options are for stat panels only`);
  if (spec.custom !== undefined && spec.type !== 'timeseries') throw new Error(`${spec.title}: custom is for time series panels only`);
  switch (spec.type) {
    case 'timeseries':
      return withCommon(timeseriesPanel(spec), spec, id, gridPos);
    case 'stat':
      return withCommon(statPanel(spec), spec, id, gridPos);
    case 'table':
      return withCommon(tablePanel(), spec, id, gridPos);
    case 'bargauge':
      return withCommon(bargaugePanel(), spec, id, gridPos);
    case 'barchart':
      return withCommon(new barchart.PanelBuilder(), spec, id, gridPos);
    case 'piechart':
      return withCommon(new piechart.PanelBuilder(), spec, id, gridPos);
  }
}

/** A dashboard as the SDK builds it. */
export type Dashboard = sdk.Dashboard;

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

/**
 * The Grafana dashboard of a spec. Panels are numbered from 1 so every panel id is unique and
 * stable within its dashboard.
 */
export function dashboard(spec: DashboardSpec): Dashboard {
  const builder = new sdk.DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['paysentinel', ...spec.tags])
    .timezone('utc')
    .readonly()
    .tooltip(sdk.DashboardCursorSync.Crosshair)
    .version(1)
    .refresh(spec.refresh)
    .time({ from: spec.from, to: 'now' })
    .timepicker(new sdk.TimePickerBuilder().refreshIntervals(['10s', '30s', '1m', '5m', '15m', '1h']))
    .variables(spec.variables.map((v) => ({ build: () => v })))
    .annotations([])
    .links([
      new sdk.DashboardLinkBuilder('paysentinel')
        .type(sdk.DashboardLinkType.Dashboards)
        .tags(['paysentinel'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    ]);
  const positions = layout(spec.panels);
  spec.panels.forEach((p, i) => builder.withPanel(panel(p, i + 1, positions[i]!)));
  return builder.build();
}

/**
 * The provisioned JSON as read back: the SDK's dashboard with our query type and the parts every
 * dashboard of ours has.
 */
export interface DashboardJson extends sdk.Dashboard {
  uid: string;
  time: { from: string; to: string };
  timepicker: { refresh_intervals: string[] };
  templating: { list: (QueryVariable & { includeAll: boolean; multi: boolean; current: { text: string[]; value: string[] } })[] };
  panels: (Omit<sdk.Panel, 'targets'> & { id: number; title: string; gridPos: GridPos; targets: ClickHouseQuery[] })[];
}
