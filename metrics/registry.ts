import client from 'prom-client';

/**
 * The pipeline's metrics on prom-client: each stage declares its series here (names are what
 * the dashboards and alerts read, so they never change), with their label names up front.
 * A thin typed layer keeps call sites short (`inc(labels, by)`, `set(value, labels)`) and lets a
 * test read one series back.
 */
type Labels = Record<string, string | number>;

/** Labels with their names in order: prom-client writes them as given, and the exposition has always sorted them. */
function sorted(labels: Labels): Labels {
  const out: Labels = {};
  for (const k of Object.keys(labels).sort()) out[k] = labels[k]!;
  return out;
}

/** The value of the series with exactly these labels, 0 when it has none yet. */
async function valueOf(metric: client.Metric<string>, labels: Labels | undefined): Promise<number> {
  const wanted = Object.entries(labels ?? {});
  const { values } = await metric.get();
  const hit = values.find((v) => {
    const have = Object.entries(v.labels);
    return have.length === wanted.length && wanted.every(([k, val]) => String(v.labels[k]) === String(val));
  });
  return hit?.value ?? 0;
}

export class Counter {
  constructor(private readonly metric: client.Counter<string>) {}
  inc(labels?: Labels, by = 1): void {
    if (labels) this.metric.inc(sorted(labels), by);
    else this.metric.inc(by);
  }
  get(labels?: Labels): Promise<number> {
    return valueOf(this.metric, labels);
  }
}

export class Gauge {
  constructor(private readonly metric: client.Gauge<string>) {}
  set(value: number, labels?: Labels): void {
    if (labels) this.metric.set(sorted(labels), value);
    else this.metric.set(value);
  }
  get(labels?: Labels): Promise<number> {
    return valueOf(this.metric, labels);
  }
}

export class Histogram {
  constructor(private readonly metric: client.Histogram<string>) {}
  observe(value: number, labels?: Labels): void {
    if (labels) this.metric.observe(sorted(labels), value);
    else this.metric.observe(value);
  }
}

export class Registry {
  readonly prom = new client.Registry();
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return new Counter(new client.Counter({ name, help, labelNames, registers: [this.prom] }));
  }
  /**
   * `read`, when given, supplies the value at each scrape (for state another part owns, or an
   * age computed from a stored time); while it returns undefined the gauge has no sample.
   */
  gauge(name: string, help: string, labelNames: readonly string[] = [], read?: () => number | undefined): Gauge {
    const collect = read
      ? function (this: client.Gauge<string>) {
          const value = read();
          // prom-client has no public way to withdraw an unlabelled sample: its value map is emptied instead.
          if (value === undefined) (this as unknown as { hashMap: Record<string, unknown> }).hashMap = {};
          else this.set(value);
        }
      : undefined;
    return new Gauge(new client.Gauge({ name, help, labelNames, registers: [this.prom], collect }));
  }
  /** A labelled gauge whose samples `read` supplies at each scrape (every series it returns, none else). */
  gaugeEach(name: string, help: string, labelNames: readonly string[], read: () => [Labels, number][]): Gauge {
    return new Gauge(
      new client.Gauge({
        name,
        help,
        labelNames,
        registers: [this.prom],
        collect(this: client.Gauge<string>) {
          this.reset();
          for (const [labels, value] of read()) this.set(sorted(labels), value);
        },
      }),
    );
  }
  histogram(name: string, help: string, buckets: number[], labelNames: readonly string[] = []): Histogram {
    return new Histogram(new client.Histogram({ name, help, buckets, labelNames, registers: [this.prom] }));
  }
  /** Adds Node's process metrics: CPU, resident memory, heap, GC, event-loop lag, handles. */
  collectProcessMetrics(): void {
    client.collectDefaultMetrics({ register: this.prom });
  }
  /** Every series in the Prometheus text exposition format, as /metrics serves it. */
  render(): Promise<string> {
    return this.prom.metrics();
  }
  get contentType(): string {
    return this.prom.contentType;
  }
}

/** The pipeline's own counters, shared by ingest and the HTTP endpoint. */
export function createIngestMetrics(registry = new Registry()) {
  return {
    registry,
    consumed: registry.counter('paysentinel_ingest_consumed_total', 'Kafka messages read from the events topic.'),
    stored: registry.counter('paysentinel_ingest_stored_total', 'Events written to ClickHouse (first time seen).'),
    duplicates: registry.counter('paysentinel_ingest_duplicates_total', 'Redelivered events skipped because their event_id was already stored.'),
    deadLettered: registry.counter('paysentinel_ingest_dead_lettered_total', 'Messages sent to the dead-letter topic, by reason kind.', ['reason']),
    rejected: registry.counter(
      'paysentinel_ingest_rejected_rows_total',
      "Valid events ClickHouse refused to store (each sent to the dead-letter topic with the server's reason).",
    ),
    degraded: registry.gauge(
      'paysentinel_ingest_degraded',
      '1 while a batch write keeps failing (ClickHouse away, or a statement or its target wrong); /healthz says why.',
    ),
    batches: registry.counter('paysentinel_ingest_batches_total', 'Batches written to ClickHouse and committed.'),
    writeErrors: registry.counter('paysentinel_ingest_write_errors_total', 'Failed write attempts (retried), by target.', ['target']),
    commitErrors: registry.counter('paysentinel_ingest_commit_errors_total', 'Offset commits that failed (data already stored; redelivery is deduplicated).'),
    insertLatency: registry.histogram(
      'paysentinel_ingest_insert_seconds',
      'Latency of one ClickHouse batch write, including the dedup look-up.',
      [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
    ),
    batchSize: registry.histogram('paysentinel_ingest_batch_rows', 'Rows per ClickHouse batch.', [10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000]),
    buffered: registry.gauge('paysentinel_ingest_buffered_rows', 'Rows waiting to be written.'),
    bufferedBytes: registry.gauge(
      'paysentinel_ingest_buffered_bytes',
      'Bytes of the messages waiting to be written (as received, plus the row or dead-letter record made of each).',
    ),
    paused: registry.gauge('paysentinel_ingest_paused', '1 while fetching is paused (ClickHouse slow or down, or buffer full).'),
    lag: registry.gauge('paysentinel_consumer_lag', 'Messages not yet committed by the consumer group, per partition.', ['topic', 'partition']),
    assigned: registry.gauge('paysentinel_consumer_assigned_partitions', 'Partitions assigned to this instance.'),
  };
}
export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

/** Scheduled analytics jobs: every finished run by job and status, so a failing job shows up in Prometheus. */
export function createJobMetrics(registry = new Registry(), clock: () => number = Date.now) {
  // End (Unix seconds) of the latest 5-minute bucket the rates job has written; the age is computed per scrape.
  let ratesUntil: number | undefined;
  const ratesComplete = registry.gauge(
    'paysentinel_rates_complete_until_timestamp_seconds',
    'Unix time of the end of the latest 5-minute bucket the rates job has written.',
  );
  registry.gauge(
    'paysentinel_rates_complete_bucket_age_seconds',
    'Seconds from the end of the latest 5-minute bucket the rates job has written to now; grows while the job fails or falls behind.',
    [],
    () => (ratesUntil === undefined ? undefined : Math.max(0, Math.round(clock() / 1000 - ratesUntil))),
  );
  // Start (ms) of each job's run in progress, so a run that overruns shows while it runs, not only once it ends.
  // A job that has run shows 0 between runs (null).
  const running = new Map<string, number | null>();
  registry.gaugeEach(
    'paysentinel_job_running_seconds',
    'Seconds the run in progress has been going, by job (0 when none runs): an overrunning run shows here before it ends.',
    ['job'],
    () => [...running].map(([job, since]) => [{ job }, since === null ? 0 : Math.max(0, Math.round((clock() - since) / 1000))]),
  );
  return {
    registry,
    /** A run of `job` started (at the metrics' clock) or ended. */
    running(job: string, started: boolean): void {
      running.set(job, started ? clock() : null);
    },
    runs: registry.counter('paysentinel_job_runs_total', 'Analytics job runs by job and status (ok or failed), scheduled and by hand.', ['job', 'status']),
    lastSuccess: registry.gauge('paysentinel_job_last_success_timestamp_seconds', 'Unix time of the last successful run, by job.', ['job']),
    duration: registry.gauge('paysentinel_job_duration_seconds', 'Duration of the last finished run (ok or failed), by job.', ['job']),
    /** The rates job has written every bucket that ends by `untilSec`; an earlier time than before changes nothing. */
    ratesWrittenUntil(untilSec: number): void {
      ratesUntil = Math.max(ratesUntil ?? untilSec, untilSec);
      ratesComplete.set(ratesUntil);
    },
  };
}
export type JobMetrics = ReturnType<typeof createJobMetrics>;
