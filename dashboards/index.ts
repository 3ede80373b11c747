export { dashboardFiles, dashboardQueries, dashboardSpecs, DEFAULT_DATABASE, type DashboardQuery } from './build.ts';
export { expandMacros, type ExpandOptions } from './macros.ts';
export { DATASOURCE, dashboard, type Dashboard, type DashboardJson, type DashboardSpec, type PanelSpec, type QueryVariable } from './model.ts';
