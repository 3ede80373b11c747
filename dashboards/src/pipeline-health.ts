import { ident } from '../../storage/sql.ts';
import { dashboard, type Dashboard, type DashboardSpec } from '../model.ts';
import { counterIncreases, gauges, timeBucket } from './sql.ts';

const M = {
  consumed: 'paysentinel_ingest_consumed_total',
  stored: 'paysentinel_ingest_stored_total',
  duplicates: 'paysentinel_ingest_duplicates_total',
  deadLettered: 'paysentinel_ingest_dead_lettered_total',
  batches: 'paysentinel_ingest_batches_total',
  writeErrors: 'paysentinel_ingest_write_errors_total',
  insertSum: 'paysentinel_ingest_insert_seconds_sum',
  insertCount: 'paysentinel_ingest_insert_seconds_count',
  batchRowsSum: 'paysentinel_ingest_batch_rows_sum',
  batchRowsCount: 'paysentinel_ingest_batch_rows_count',
  buffered: 'paysentinel_ingest_buffered_rows',
  paused: 'paysentinel_ingest_paused',
  lag: 'paysentinel_consumer_lag',
} as const;

/** Label value out of the stored Prometheus label text, e.g. label('partition'). */
const label = (key: string): string => `extract(labels, '${key}="([^"]*)"')`;

/** Ops' view of the pipeline: is it keeping up, what is it rejecting, are the jobs running. */
export function pipelineHealthSpec(database: string): DashboardSpec {
  const metrics = ident(database, 'pipeline_metrics').text;
  const runs = ident(database, 'job_runs').text;
  const automationSwitch = ident(database, 'automation_switch').text;
  const commands = ident(database, 'commands').text;
  const average = (sum: string, count: string, column: string) => `SELECT toDateTime(intDiv(ts, $__interval_s) * $__interval_s, 'UTC') AS time,
  sumIf(delta, name = '${sum}') / sumIf(delta, name = '${count}') AS ${column}
FROM (${counterIncreases(metrics, [sum, count])})
GROUP BY time
HAVING sumIf(delta, name = '${count}') > 0
ORDER BY time`;
  return {
    uid: 'paysentinel-pipeline-health',
    title: 'Pipeline health',
    description:
      'Ingest throughput, consumer lag, ClickHouse writes and dead letters (from pipeline_metrics, recorded by the pipeline every 10 s) and scheduled ' +
      'job runs (from job_runs).',
    tags: ['pipeline', 'ops'],
    from: 'now-3h',
    refresh: '30s',
    variables: [],
    panels: [
      {
        type: 'stat',
        title: 'Automation paused',
        description:
          'The automation kill switch at the end of the range (paysentinel automation pause|resume): 1 = paused, no command is sent to the gateway and ' +
          'automatic cases go to support; 0 = running as AUTOMATION says.',
        w: 6,
        h: 5,
        unit: 'short',
        sql: [`SELECT if(argMax(state, version) = 'paused', 1, 0) AS paused FROM ${automationSwitch} WHERE version <= toUInt64(toUInt32($__toTime)) * 1000`],
        columns: ['paused'],
        options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none', textMode: 'auto' },
      },
      {
        type: 'table',
        title: 'Commands to the gateway by type and outcome',
        description:
          'Commands automation issued in the range (issued_at), by type, mode (sent, or "would have sent" in dry-run) and status as it is now: issued ' +
          '(waiting), done, rejected, failed, expired (no outcome by escalate_after), cancelled; with the time from issue to outcome (done, rejected or ' +
          'failed) and how many went to support.',
        w: 18,
        h: 8,
        sql: [
          `SELECT type AS command_type, if(mode = 'on', 'sent', 'would have sent') AS sent, status AS command_status, count() AS commands,
  quantileIf(0.5)(toUInt32(changed_at) - toUInt32(issued_at), status IN ('done', 'rejected', 'failed')) AS p50_outcome_s,
  quantileIf(0.9)(toUInt32(changed_at) - toUInt32(issued_at), status IN ('done', 'rejected', 'failed')) AS p90_outcome_s,
  countIf(escalated = 1 AND status != 'done') AS escalated_to_support
FROM ${commands}
WHERE $__timeFilter(issued_at)
GROUP BY command_type, sent, command_status
ORDER BY command_type, sent, command_status`,
        ],
        columns: ['command_type', 'sent', 'command_status', 'commands', 'p50_outcome_s', 'p90_outcome_s', 'escalated_to_support'],
        unitsByColumn: { p50_outcome_s: 's', p90_outcome_s: 's' },
      },
      {
        type: 'timeseries',
        title: 'Consumed, stored and dead-lettered per second',
        description: 'Kafka messages read, events written to ClickHouse, redeliveries skipped and messages sent to the dead-letter topic, all instances added.',
        w: 12,
        h: 8,
        unit: 'reqps',
        sql: [
          `SELECT toDateTime(intDiv(ts, $__interval_s) * $__interval_s, 'UTC') AS time,
  transform(name, ['${M.consumed}', '${M.stored}', '${M.duplicates}', '${M.deadLettered}'], ['consumed', 'stored', 'duplicates', 'dead-lettered'],
    name) AS series,
  sum(delta) / $__interval_s AS per_s
FROM (${counterIncreases(metrics, [M.consumed, M.stored, M.duplicates, M.deadLettered])})
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Consumer lag per partition',
        description: 'Messages on each partition not yet committed by the consumer group (highest reported in the bucket).',
        w: 12,
        h: 8,
        unit: 'short',
        sql: [
          `SELECT toDateTime(intDiv(ts, $__interval_s) * $__interval_s, 'UTC') AS time, concat('partition ', ${label('partition')}) AS partition,
            max(value) AS lag
FROM (${gauges(metrics, [M.lag])})
GROUP BY time, partition
ORDER BY time, partition`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Insert latency (average)',
        description: 'Average time of one ClickHouse batch write, including the dedup look-up.',
        w: 8,
        h: 8,
        unit: 's',
        sql: [average(M.insertSum, M.insertCount, 'latency_s')],
      },
      {
        type: 'timeseries',
        title: 'Insert batch size (average)',
        description: 'Average rows per ClickHouse batch.',
        w: 8,
        h: 8,
        unit: 'short',
        sql: [average(M.batchRowsSum, M.batchRowsCount, 'rows_per_batch')],
      },
      {
        type: 'timeseries',
        title: 'Buffered rows and paused fetching',
        description:
          'Rows waiting to be written, and 1 while fetching is paused (ClickHouse slow or down, or buffer full), highest in the bucket over all instances.',
        w: 8,
        h: 8,
        unit: 'short',
        sql: [
          `SELECT toDateTime(intDiv(ts, $__interval_s) * $__interval_s, 'UTC') AS time, if(name = '${M.paused}', 'paused',
            'buffered rows') AS series, max(value) AS level
FROM (${gauges(metrics, [M.buffered, M.paused])})
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'table',
        title: 'Dead-letter reasons',
        description: 'Messages sent to the dead-letter topic in the range, by reason.',
        w: 8,
        h: 8,
        sql: [
          `SELECT ${label('reason')} AS reason, sum(delta) AS messages
FROM (${counterIncreases(metrics, [M.deadLettered])})
GROUP BY reason
HAVING messages > 0
ORDER BY messages DESC`,
        ],
        columns: ['reason', 'messages'],
      },
      {
        type: 'timeseries',
        title: 'Batches and write errors per minute',
        description: 'ClickHouse batches written and committed, and failed (retried) write attempts.',
        w: 8,
        h: 8,
        unit: 'short',
        sql: [
          `SELECT toDateTime(intDiv(ts, $__interval_s) * $__interval_s, 'UTC') AS time,
  if(name = '${M.batches}', 'batches', 'write errors') AS series,
  sum(delta) * 60 / $__interval_s AS per_min
FROM (${counterIncreases(metrics, [M.batches, M.writeErrors])})
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'stat',
        title: 'Failed job runs',
        description: 'Scheduled job runs (e.g. rates) that failed in the range; see the table for the error.',
        w: 8,
        h: 8,
        unit: 'short',
        sql: [`SELECT countIf(status = 'failed') AS failed_runs, countIf(status = 'ok') AS ok_runs FROM ${runs} FINAL WHERE $__timeFilter(started_at)`],
        columns: ['failed_runs', 'ok_runs'],
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'background',
          graphMode: 'none',
          textMode: 'value_and_name',
        },
      },
      {
        type: 'timeseries',
        title: 'Job runs by status',
        description: 'Runs of scheduled jobs started in each bucket, by their current status.',
        w: 12,
        h: 8,
        unit: 'short',
        custom: { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal', group: 'A' } },
        sql: [
          `SELECT ${timeBucket('started_at')}, concat(job, ' ', toString(status)) AS series, count() AS runs
FROM ${runs} FINAL
WHERE $__timeFilter(started_at)
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Job run duration',
        description:
          'The longest run of each job started in each bucket, in seconds; a run still going counts up to now, so an overrunning run shows while ' +
          'it runs. The rates job runs every minute and should take under 10 s: a run near 60 s means it is not keeping up (its next ticks are ' +
          'skipped). paysentinel_job_running_seconds{job} on /metrics is the same for the run in progress.',
        w: 12,
        h: 8,
        unit: 's',
        sql: [
          `SELECT ${timeBucket('started_at')}, job AS series,
  max(if(isNull(finished_at), toUInt32(now()), toUInt32(assumeNotNull(finished_at))) - toUInt32(started_at)) AS seconds
FROM ${runs} FINAL
WHERE $__timeFilter(started_at)
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'stat',
        title: 'Rates: age of the latest complete bucket',
        description:
          'Seconds from the end of the latest 5-minute bucket the rates job had written to the end of the range (now, when the range ends now). Up to ' +
          'about 6 minutes is normal (a bucket is written once it has ended, by the next minute run); more means the job ' +
          'is failing or falling behind.',
        w: 12,
        h: 8,
        unit: 's',
        sql: [
          `SELECT toInt64(toUInt32($__toTime)) - toInt64(max(toUInt32(window_to))) AS age_s FROM ${runs} FINAL WHERE job = 'rates' AND status = 'ok' ` +
            `AND finished_at <= $__toTime`,
        ],
        columns: ['age_s'],
        options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none', textMode: 'value' },
      },
      {
        type: 'table',
        title: 'Recent job runs',
        description: 'The latest runs, newest first, with the window they covered and the error of a failed run.',
        w: 12,
        h: 8,
        sql: [
          `SELECT job, started_at, toString(status) AS run_status, rows, if(isNull(finished_at), NULL,
            toUInt32(assumeNotNull(finished_at)) - toUInt32(started_at)) AS duration_s, window_from, window_to, error
FROM ${runs} FINAL
WHERE $__timeFilter(started_at)
ORDER BY started_at DESC, run_id DESC
LIMIT 50`,
        ],
        columns: ['job', 'started_at', 'run_status', 'rows', 'duration_s', 'window_from', 'window_to', 'error'],
      },
    ],
  };
}

export const pipelineHealth = (database: string): Dashboard => dashboard(pipelineHealthSpec(database));
