/** Live detection: features from ClickHouse, rules from rules/, hits to the case store (cases/). */
export { createDetector, type Detector, type DetectorDeps, type DetectorStats, type DetectorStatus } from './detector.ts';
export { contextFeatureSql, contextFeaturesQuery } from './context.ts';
export { hotKeysQuery } from './hot-sets.ts';
export { newKeysQuery, newRowsQuery, positionRange } from './positions.ts';
export { reconciledOrdersQuery, stuckOrdersQuery } from './order-rechecks.ts';
export { entityEventsQuery, entityScreenQuery, screenHaving, screenPlan, ENTITY_IDS_TABLE } from './screen.ts';
