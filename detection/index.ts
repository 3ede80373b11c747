/** Live detection: features from ClickHouse, rules from rules/, cases for support. */
export { createDetector, type Detector, type DetectorDeps, type DetectorStats } from './detector.ts';
export { contextFeatureSql, contextFeaturesQuery, entityEventsQuery, entityScreenQuery, hotKeysQuery, newKeysQuery, newRowsQuery, positionRange, reconciledOrdersQuery, screenHaving, screenPlan, stuckOrdersQuery, ENTITY_IDS_TABLE } from './source.ts';
