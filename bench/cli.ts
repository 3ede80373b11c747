import { mkdir, writeFile } from 'node:fs/promises';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { createLogger } from '../log/index.ts';
import { numberOption, parseCommandArgs, type Command } from '../cli/command.ts';
import { parseDuration } from '../rules/duration.ts';
import { runDetectBench, runDetectThroughput, type DetectBenchResult, type Latency, type RatesFreshness } from './detect.ts';
import { parseVariant, runIngestBench, type IngestBenchResult } from './ingest.ts';

const help = `Usage: paysentinel bench detect [--rate 5000] [--duration 60s] [--attacks 20] [--history 0] [--no-seed-rates] [--backlog 1000000] [--json]

Measures detection two ways and writes both to out/bench-detect.json:
  1. Latency: runs "paysentinel start" on fresh topics and database, produces simulator traffic
     at --rate events/s and, --attacks times, two attacks: a card-testing burst from a new IP
     whose 15th attempt is the one that satisfies ip_amount_probing, and a new order whose
     second attempt also succeeds (duplicate_charge, an order: 24-hour windows). Prints the
     latency from the triggering event's acknowledgement by Kafka to its case arriving on the
     cases topic (p50/p95/p99/max), per rule and over both. The background traffic (up to 3
     million messages) is built before it is sent, so the 40-60 us of CPU each message costs the
     simulator is not taken from the pipeline under test; above that it is built while sent.
     --history N first stores N events of simulator traffic over the 15 minutes before the run,
     as a quarter of an hour of sustained traffic leaves them (4500000 = 5,000 events/s), so the
     ticks and the channel context read full windows, as they do after the first minutes of a
     real run. Writing them takes about a minute and a half per million events here. The
     scheduled jobs run on them during the measurement (on one ClickHouse thread), as they
     would in a deployment at that rate. Traffic starts once the pipeline is ready (/healthz).
     The history's rates are seeded first by the rates job run by hand twice (as an
     installation with that history has them); --no-seed-rates leaves them to the scheduled
     runs' catch-up. The history's made-up Kafka positions, and once its rates are seeded its
     change-log rows (stamped seconds, not minutes, before the run), are removed: a
     deployment's would be below the traffic's offsets and older than every job's look-back. Prints every scheduled job run once the pipeline is up (start, duration,
     status) and the latest complete 5-minute rates bucket when the traffic stops.
  2. Throughput: writes --backlog stored events (each from a new IP, device, user and order,
     plus one card-testing burst) into a fresh database and times the detector working them
     off with the shipped rules: events/s detection alone keeps pace with (0 skips it).

Usage: paysentinel bench ingest [--count 1000000] [--partitions 6] [--processes 1] [--seed 1] [--no-baseline] [--no-detection]
                               [--variant LABEL:NAME=VALUE,... ...] [--rounds 1] [--timeout 15m] [--json]

Produces --count simulator events to a fresh topic, then measures end to end, one after the
other and each with its own consumer group and database:
  1. "paysentinel start --roles ingest" (real child processes, --processes of them sharing the
     consumer group) consuming them into ClickHouse, until every distinct event is stored:
     events/s from process start (its database migrated before, as the baselines' tables
     are created before their clocks start), events/s once rows flow, peak RSS (VmHWM) of each
     process;
  2. the same with every role ("paysentinel start"): ingest while detection works beside it;
  3. ClickHouse's own Kafka table engine with a materialized view consuming the same topic
     into a plain MergeTree table (no validation, no dead-letter, no dedup): rows/s;
  4. the same Kafka engine into a migrated payment_events, so every message also goes through
     our materialized views (the like-for-like figure, printed beside the plain one): rows/s.
Prints them and the ratios to the baselines, and writes them to out/bench-ingest.json. Uses its
own topic and databases and removes them afterwards. Needs the stack ("paysentinel stack up").

Options:
  --count N        Events to produce (default 1000000)
  --partitions N   Partitions of the bench topic (default 6)
  --processes N    Ingest-only processes in the first measurement (default 1)
  --seed N         Simulator seed (default 1)
  --no-baseline    Skip the Kafka-engine baselines (3. and 4.)
  --no-detection   Skip the run with every role (2.): a quicker A/B of ingest alone
  --variant V      Settings to compare, as LABEL:NAME=VALUE,NAME=VALUE (repeatable): 1. runs
                   once per variant with those environment variables added, on the same topic
                   (e.g. --variant small:INGEST_BATCH_MAX_ROWS=10000 --variant large:INGEST_BATCH_MAX_ROWS=50000);
                   BENCH_CHECKOUT=DIR runs the paysentinel of another checkout of this
                   repository (its own node_modules installed) against the same topic, to
                   compare two versions of the code (the database is migrated by this one)
  --rounds N       With --variant: run every variant N times, interleaved (default 1); the
                   ratios use the first variant's first run
  --timeout D      Give up waiting for either consumer after D (default 15m)
  --json           Print the result as JSON`;

export const benchCommand: Command = {
  name: 'bench',
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      'bench',
      argv,
      {
        count: { type: 'string' },
        partitions: { type: 'string' },
        processes: { type: 'string' },
        seed: { type: 'string' },
        'no-baseline': { type: 'boolean' },
        'no-detection': { type: 'boolean' },
        variant: { type: 'string', multiple: true },
        rounds: { type: 'string' },
        timeout: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        attacks: { type: 'string' },
        backlog: { type: 'string' },
        history: { type: 'string' },
        'no-seed-rates': { type: 'boolean' },
        json: { type: 'boolean' },
      },
      true,
    );
    if (positionals[0] === 'detect' && positionals.length === 1) {
      const durationMs = values.duration === undefined ? 60_000 : parseDuration(values.duration);
      if (durationMs === null) throw new PaysentinelError('USAGE', `--duration ${values.duration} is not a duration such as 60s`);
      const result = await runDetectBench(loadConfig(), createLogger({ level: 'warn' }), {
        rate: numberOption('bench', 'rate', values.rate, 5_000, 1),
        durationMs,
        attacks: numberOption('bench', 'attacks', values.attacks, 20, 1),
        history: Math.floor(numberOption('bench', 'history', values.history, 0, 0)),
        seedRates: values['no-seed-rates'] !== true,
        progress: (line) => process.stderr.write(`bench: ${line}\n`),
      });
      const backlog = numberOption('bench', 'backlog', values.backlog, 1_000_000, 0);
      const throughput =
        backlog > 0
          ? await runDetectThroughput(loadConfig(), { events: Math.floor(backlog), progress: (line) => process.stderr.write(`bench: ${line}\n`) })
          : null;
      const report = { ...result, throughput };
      await mkdir(new URL('../out/', import.meta.url), { recursive: true });
      await writeFile(new URL('../out/bench-detect.json', import.meta.url), JSON.stringify(report, null, 2) + '\n');
      process.stdout.write(
        values.json
          ? JSON.stringify(report, null, 2) + '\n'
          : `\ndetection at ${result.rate} events/s background (${result.backgroundEvents} events` +
              `${result.history ? `, over ${result.history} stored in the 15 minutes before` : ''}): ` +
              `${result.detected}/${result.attacks} attacks detected\n` +
              'latency from the triggering event to its case on the cases topic:\n' +
              [...Object.entries(result.byRule), ['both', result] as const]
                .map(
                  ([rule, r]) =>
                    `  ${rule.padEnd(18)} ${String(r.detected).padStart(3)}/${r.attacks}  ${r.latencyMs ? latencies(r.latencyMs) : 'no case arrived'}\n`,
                )
                .join('') +
              (result.seededRates
                ? `rates of the history seeded before the run by the rates job run by hand, twice (analytics run rates): ${result.seededRates.status}, ` +
                  `${result.seededRates.seconds.toFixed(1)} s
` +
                  (result.seededReconcile
                    ? `reconcile records of the history rebuilt by the reconcile job run by hand (analytics run reconcile): ${result.seededReconcile.status}, ${result.seededReconcile.seconds.toFixed(1)} s\n`
                    : '')
                : result.history
                  ? 'rates of the history not seeded (--no-seed-rates): the scheduled runs catch it up\n'
                  : '') +
              renderRuns(result) +
              renderFreshness(result.ratesBuckets) +
              (throughput
                ? `throughput: a stored backlog of ${throughput.events} events worked off in ${throughput.seconds.toFixed(1)} s = ` +
                  `${Math.round(throughput.eventsPerSecond)} events/s (${throughput.ticks} ticks, ${throughput.evaluated} entities computed exactly, ` +
                  `${throughput.casesOpened} case opened)\n`
                : '') +
              'written to out/bench-detect.json\n',
      );
      return result.detected === result.attacks && (throughput === null || throughput.casesOpened === 1) ? 0 : 1;
    }
    if (positionals[0] !== 'ingest' || positionals.length !== 1) {
      throw new PaysentinelError(
        'USAGE',
        'Which benchmark? "paysentinel bench ingest" or "paysentinel bench detect".\nRun "paysentinel bench --help" for usage.',
      );
    }
    const timeoutMs = values.timeout === undefined ? 15 * 60_000 : parseDuration(values.timeout);
    if (timeoutMs === null) throw new PaysentinelError('USAGE', `--timeout ${values.timeout} is not a duration such as 15m`);
    const variants = (values.variant ?? []).map((text) => {
      const v = parseVariant(text);
      if (!v)
        throw new PaysentinelError('USAGE', `--variant ${text} is not LABEL:NAME=VALUE,NAME=VALUE (names in capitals, e.g. small:INGEST_BATCH_MAX_ROWS=10000)`);
      return v;
    });
    const config = loadConfig();
    const result = await runIngestBench(config, createLogger({ level: 'warn' }), {
      count: numberOption('bench', 'count', values.count, 1_000_000, 1),
      partitions: numberOption('bench', 'partitions', values.partitions, 6, 1),
      seed: numberOption('bench', 'seed', values.seed, 1, 0),
      processes: numberOption('bench', 'processes', values.processes, 1, 1),
      skipBaseline: values['no-baseline'] === true,
      skipDetection: values['no-detection'] === true,
      variants,
      rounds: numberOption('bench', 'rounds', values.rounds, 1, 1),
      timeoutMs,
      progress: (line) => process.stderr.write(`bench: ${line}\n`),
    });
    await mkdir(new URL('../out/', import.meta.url), { recursive: true });
    await writeFile(new URL('../out/bench-ingest.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(values.json ? JSON.stringify(result, null, 2) + '\n' : render(result));
    return 0;
  },
};

/** Every scheduled run once the pipeline was up, then a line per job. */
/** p50, p95, p99 and max of one rule's detection latencies. */
const latencies = (l: Latency): string => `p50 ${l.p50.toFixed(0)} ms, p95 ${l.p95.toFixed(0)} ms, p99 ${l.p99.toFixed(0)} ms, max ${l.max.toFixed(0)} ms`;

function renderRuns(r: DetectBenchResult): string {
  const runs = r.runs.map(
    (j) =>
      `  ${j.startedAt.slice(11, 19)}  ${j.job.padEnd(14)} ${String(j.seconds).padStart(4)} s  ` +
      `${j.status}${j.beforeTraffic ? '  (started before the traffic)' : ''}${j.error ? `  ${j.error.slice(0, 120)}` : ''}\n`,
  );
  const jobs = r.jobs.map((j) => `  ${j.job.padEnd(14)} ${j.runs} runs, ${j.failed} failed, p50 ${j.p50Seconds} s, max ${j.maxSeconds} s\n`);
  return (
    'scheduled job runs once the pipeline was up (job_runs; start UTC, whole seconds, a run still going counted so far):\n' +
    (runs.length ? runs.join('') + jobs.join('') : '  none recorded\n')
  );
}

function renderFreshness(f: RatesFreshness | null): string {
  if (!f) return 'rates: no complete 5-minute bucket when the traffic stopped\n';
  const closed =
    f.behindSeconds === 0
      ? `it is the latest closed bucket${f.writtenAfterSeconds === null ? '' : `, complete ${f.writtenAfterSeconds} s after it ended`}`
      : `the latest closed bucket (ended ${f.latestClosedEnd.slice(11, 19)}) had been waiting ${f.behindSeconds} s`;
  return `rates: the latest complete 5-minute bucket ended ${f.completeUntil.slice(11, 19)}, ${f.ageSeconds} s before the traffic stopped; ${closed}\n`;
}

function render(r: IngestBenchResult): string {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  return [
    '',
    `machine: ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, node ${r.machine.node}, ClickHouse ${r.machine.clickhouse}, ` +
      `Kafka ${r.machine.kafka}`,
    `load: ${f(r.messages)} messages (${f(r.distinctEvents)} distinct events) produced in ${r.produce.seconds.toFixed(1)} s (${f(r.produce.perSecond)} msg/s)`,
    '',
    ...[r.ingestOnly, ...(r.withDetection ? [r.withDetection] : [])].map(
      (p) =>
        `${`--roles ${p.roles}${p.processes > 1 ? ` ×${p.processes}` : ''}`.padEnd(34)}${f(p.eventsPerSecond)} events/s end to end ` +
        `(${p.seconds.toFixed(1)} s from process start; ${f(p.steadyEventsPerSecond)} events/s once rows flow), peak RSS ` +
        `${p.peakRssMiB.map((m) => m.toFixed(0)).join(' + ')} MiB`,
    ),
    ...(r.variants ?? []).map((v) => {
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const runs = v.runs.map((p) => f(p.eventsPerSecond)).join(', ');
      return (
        `${`  variant ${v.label}`.padEnd(34)}mean ${f(mean(v.runs.map((p) => p.eventsPerSecond)))} events/s end to end (${runs}); ` +
        `${f(mean(v.runs.map((p) => p.steadyEventsPerSecond)))} once rows flow; peak RSS up to ${Math.max(...v.runs.flatMap((p) => p.peakRssMiB)).toFixed(0)} MiB`
      );
    }),
    r.baseline
      ? `${'kafka engine + MV'.padEnd(34)}${f(r.baseline.rowsPerSecond)} rows/s end to end (${r.baseline.seconds.toFixed(1)} s for ${f(r.baseline.rows)} rows)`
      : `${'kafka engine + MV'.padEnd(34)}skipped`,
    r.baselineWithViews
      ? `${'kafka engine + MV, our views'.padEnd(34)}${f(r.baselineWithViews.rowsPerSecond)} rows/s end to end ` +
        `(${r.baselineWithViews.seconds.toFixed(1)} s for ${f(r.baselineWithViews.rows)} rows into a migrated payment_events)`
      : '',
    r.ratio !== null
      ? `${'ratio'.padEnd(34)}${r.ratio.toFixed(2)}x (ingest role)` +
        `${r.ratioWithDetection !== null ? `, ${r.ratioWithDetection.toFixed(2)}x (with detection)` : ''} of the Kafka-engine baseline` +
        `${r.ratioToViews !== null ? `; ${r.ratioToViews.toFixed(2)}x (ingest role) of the baseline with our views` : ''}`
      : '',
    '',
    'written to out/bench-ingest.json',
    '',
  ].join('\n');
}
