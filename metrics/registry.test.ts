import { expect, test } from 'vitest';
import { Registry, createJobMetrics } from './registry.ts';

test('series render in the Prometheus text format, labels sorted by name, histograms with labels', async () => {
  const r = new Registry();
  const lag = r.gauge('x_lag', 'Lag.', ['topic', 'partition']);
  lag.set(7, { topic: 'payments.events', partition: 0 });
  const tick = r.histogram('x_tick_seconds', 'Tick time.', [0.1, 1], ['entity']);
  tick.observe(0.05, { entity: 'ip' });
  tick.observe(2, { entity: 'ip' });
  const runs = r.counter('x_runs_total', 'Runs.', ['job', 'status']);
  runs.inc({ status: 'ok', job: 'rates' }, 2);
  const text = await r.render();
  expect(text).toMatch(/^x_lag\{partition="0",topic="payments.events"\} 7$/m);
  expect(text).toMatch(/^x_tick_seconds_bucket\{le="0.1",entity="ip"\} 1$/m);
  expect(text).toMatch(/^x_tick_seconds_count\{entity="ip"\} 2$/m);
  expect(await runs.get({ job: 'rates', status: 'ok' })).toBe(2);
  expect(await runs.get({ job: 'rates', status: 'failed' })).toBe(0);
});

test("the process's own metrics are there once asked for", async () => {
  const r = new Registry();
  expect(await r.render()).not.toMatch(/process_resident_memory_bytes/);
  r.collectProcessMetrics();
  const text = await r.render();
  for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
    expect(text, name).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'));
  }
  // Samples appear with the first collection; the series is declared from the start.
  expect(text).toMatch(/^# TYPE nodejs_gc_duration_seconds histogram$/m);
});

test('a job run in progress shows its running seconds at every scrape, and 0 once it ended', async () => {
  let clock = 1_000_000;
  const metrics = createJobMetrics(undefined, () => clock);
  expect(await metrics.registry.render()).not.toMatch(/^paysentinel_job_running_seconds\{/m);
  metrics.running('rates', true);
  clock += 75_000;
  expect(await metrics.registry.render()).toMatch(/^paysentinel_job_running_seconds\{job="rates"\} 75$/m);
  clock += 60_000;
  expect(await metrics.registry.render()).toMatch(/^paysentinel_job_running_seconds\{job="rates"\} 135$/m);
  metrics.running('rates', false);
  expect(await metrics.registry.render()).toMatch(/^paysentinel_job_running_seconds\{job="rates"\} 0$/m);
});
