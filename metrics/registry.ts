/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format. Enough for /metrics without pulling a dependency into the hot path.
 */
type Labels = Record<string, string | number>;

const labelKey = (labels: Labels | undefined): string => {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return '{' + keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') + '}';
};

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels?: Labels, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${v}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  set(value: number, labels?: Labels): void {
    this.values.set(labelKey(labels), value);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  reset(): void {
    this.values.clear();
  }
  entries(): [string, number][] {
    return [...this.values];
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${v}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.counts[i]!++;
  }
  snapshot(): { sum: number; count: number } {
    return { sum: this.sum, count: this.count };
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

/** A gauge computed when it is rendered (an age from a stored time); no line while `read` has no value. */
export class ComputedGauge implements Metric {
  constructor(readonly name: string, readonly help: string, private readonly read: () => number | undefined) {}
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    const value = this.read();
    if (value !== undefined) lines.push(`${this.name} ${value}`);
    return lines.join('\n');
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.add(new Gauge(name, help));
  }
  computedGauge(name: string, help: string, read: () => number | undefined): ComputedGauge {
    return this.add(new ComputedGauge(name, help, read));
  }
  histogram(name: string, help: string, buckets: number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  render(): string {
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
  private add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }
}

/** The pipeline's own counters, shared by ingest and the HTTP endpoint. */
export function createIngestMetrics(registry = new Registry()) {
  return {
    registry,
    consumed: registry.counter('paysentinel_ingest_consumed_total', 'Kafka messages read from the events topic.'),
    stored: registry.counter('paysentinel_ingest_stored_total', 'Events written to ClickHouse (first time seen).'),
    duplicates: registry.counter('paysentinel_ingest_duplicates_total', 'Redelivered events skipped because their event_id was already stored.'),
    deadLettered: registry.counter('paysentinel_ingest_dead_lettered_total', 'Messages sent to the dead-letter topic, by reason kind.'),
    batches: registry.counter('paysentinel_ingest_batches_total', 'Batches written to ClickHouse and committed.'),
    writeErrors: registry.counter('paysentinel_ingest_write_errors_total', 'Failed write attempts (retried), by target.'),
    commitErrors: registry.counter('paysentinel_ingest_commit_errors_total', 'Offset commits that failed (data already stored; redelivery is deduplicated).'),
    insertLatency: registry.histogram('paysentinel_ingest_insert_seconds', 'Latency of one ClickHouse batch write, including the dedup look-up.', [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
    batchSize: registry.histogram('paysentinel_ingest_batch_rows', 'Rows per ClickHouse batch.', [10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000]),
    buffered: registry.gauge('paysentinel_ingest_buffered_rows', 'Rows waiting to be written.'),
    paused: registry.gauge('paysentinel_ingest_paused', '1 while fetching is paused (ClickHouse slow or down, or buffer full).'),
    lag: registry.gauge('paysentinel_consumer_lag', 'Messages not yet committed by the consumer group, per partition.'),
    assigned: registry.gauge('paysentinel_consumer_assigned_partitions', 'Partitions assigned to this instance.'),
  };
}
export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

/** Scheduled analytics jobs: every finished run by job and status, so a failing job shows up in Prometheus. */
export function createJobMetrics(registry = new Registry(), clock: () => number = Date.now) {
  // End (Unix seconds) of the latest 5-minute bucket the rates job has written; the age is computed per scrape.
  let ratesUntil: number | undefined;
  const ratesComplete = registry.gauge('paysentinel_rates_complete_until_timestamp_seconds', 'Unix time of the end of the latest 5-minute bucket the rates job has written.');
  registry.computedGauge(
    'paysentinel_rates_complete_bucket_age_seconds',
    'Seconds from the end of the latest 5-minute bucket the rates job has written to now; grows while the job fails or falls behind.',
    () => (ratesUntil === undefined ? undefined : Math.max(0, Math.round(clock() / 1000 - ratesUntil))),
  );
  return {
    registry,
    runs: registry.counter('paysentinel_job_runs_total', 'Analytics job runs by job and status (ok or failed), scheduled and by hand.'),
    lastSuccess: registry.gauge('paysentinel_job_last_success_timestamp_seconds', 'Unix time of the last successful run, by job.'),
    duration: registry.gauge('paysentinel_job_duration_seconds', 'Duration of the last finished run (ok or failed), by job.'),
    /** The rates job has written every bucket that ends by `untilSec`; an earlier time than before changes nothing. */
    ratesWrittenUntil(untilSec: number): void {
      ratesUntil = Math.max(ratesUntil ?? untilSec, untilSec);
      ratesComplete.set(ratesUntil);
    },
  };
}
export type JobMetrics = ReturnType<typeof createJobMetrics>;
