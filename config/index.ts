import { PaysentinelError } from '../errors/index.ts';
import { parseDuration } from '../rules/duration.ts';

type Parser<T> = (raw: string, name: string) => T;

interface Setting<T> {
  env: string;
  default: string;
  description: string;
  parse: Parser<T>;
  /** Secrets are never printed. */
  secret?: boolean;
}

const fail = (name: string, raw: string, expected: string): never => {
  throw new PaysentinelError('CONFIG_INVALID', `${name}=${JSON.stringify(raw)} is invalid: expected ${expected}.`);
};

const int =
  (min: number, max: number): Parser<number> =>
  (raw, name) => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      return fail(name, raw, `a whole number from ${min} to ${max}`);
    }
    return n;
  };

const text =
  (pattern?: RegExp, expected?: string): Parser<string> =>
  (raw, name) => {
    const value = raw.trim();
    if (value === '' || (pattern && !pattern.test(value))) return fail(name, raw, expected ?? 'a non-empty value');
    return value;
  };

const anyText: Parser<string> = (raw) => raw;

const brokers: Parser<string[]> = (raw, name) => {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0 || list.some((b) => !/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b))) {
    return fail(name, raw, 'a comma-separated list of host:port, e.g. 127.0.0.1:9092');
  }
  return list;
};

const httpUrl: Parser<string> = (raw, name) => {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return fail(name, raw, 'an http(s) URL such as http://127.0.0.1:8123');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(name, raw, 'an http(s) URL such as http://127.0.0.1:8123');
  if (url.username || url.password) return fail(name, raw, 'a URL without credentials (set CLICKHOUSE_USER and CLICKHOUSE_PASSWORD instead)');
  return url.toString().replace(/\/$/, '');
};

/** Empty (feature off) or an http(s) URL; credentials belong elsewhere because `paysentinel config` prints URLs. */
const optionalHttpUrl: Parser<string> = (raw, name) => {
  const value = raw.trim();
  if (value === '') return '';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(name, raw, 'empty (off) or an http(s) URL such as https://support.example.com/hooks/cases');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return fail(name, raw, 'empty (off) or an http(s) URL such as https://support.example.com/hooks/cases');
  if (url.username || url.password)
    return fail(name, '(hidden)', 'a URL without user:password (requests are authenticated by the CASE_WEBHOOK_SECRET signature)');
  return url.href;
};

/** HMAC keys: empty, or long enough to be worth signing with. The value never appears in messages. */
const signingSecret: Parser<string> = (raw, name) => {
  if (raw !== '' && raw.length < 16) {
    throw new PaysentinelError('CONFIG_INVALID', `${name} is too short: expected at least 16 characters, e.g. the output of \`openssl rand -hex 32\`.`);
  }
  return raw;
};

/** Empty (console off) or a key long enough to derive the session cookie key from. */
const sessionSecret: Parser<string> = (raw, name) => {
  if (raw !== '' && raw.length < 32) {
    throw new PaysentinelError('CONFIG_INVALID', `${name} is too short: expected at least 32 characters, e.g. the output of \`openssl rand -hex 32\`.`);
  }
  return raw;
};

const identifier = text(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a ClickHouse identifier (letters, digits, underscore)');
const topicName = text(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name (letters, digits, ".", "_", "-")');
const logLevels = ['debug', 'info', 'warn', 'error'] as const;
const logLevel: Parser<(typeof logLevels)[number]> = (raw, name) => {
  const value = raw.trim() as (typeof logLevels)[number];
  return logLevels.includes(value) ? value : fail(name, raw, 'one of debug, info, warn, error');
};

/** The most partitions of a topic detection's position statements are tested with (see KAFKA_TOPIC_PARTITIONS). */
export const MAX_TOPIC_PARTITIONS = 128;

/** The largest INGEST_BATCH_MAX_ROWS: every statement a batch sends is tested at this size. */
export const MAX_BATCH_ROWS = 100_000;
/** A duration such as 30m, 90s, 2h or 1d (at most `maxMs`), in milliseconds. */
const duration =
  (maxMs: number): Parser<number> =>
  (raw, name) => {
    // A setting names its unit: a bare number could be meant as seconds or as minutes.
    const ms = /[a-z]$/.test(raw.trim()) ? parseDuration(raw) : null;
    return ms !== null && Number.isSafeInteger(ms) && ms <= maxMs
      ? ms
      : fail(name, raw, `a duration such as 30m, 90s, 2h or 1d, at most ${maxMs / 3_600_000} hours`);
  };

/** How automatic rules act: not at all, recorded only ("would have sent"), or for real. */
export const automationModes = ['off', 'dry-run', 'on'] as const;
export type AutomationMode = (typeof automationModes)[number];
const automationMode: Parser<AutomationMode> = (raw, name) => {
  const value = raw.trim() as AutomationMode;
  return automationModes.includes(value) ? value : fail(name, raw, 'off, dry-run or on');
};
export const jobPriorities = ['foreground', 'above-jobs', 'background'] as const;
export type JobPriority = (typeof jobPriorities)[number];
const jobPriority: Parser<JobPriority> = (raw, name) => {
  const value = raw.trim() as JobPriority;
  return jobPriorities.includes(value) ? value : fail(name, raw, 'foreground, above-jobs or background');
};
/** JOBS_SPILL_BYTES: a number of bytes, or `auto` (half the jobs' per-query memory limit, read from the server). */
const spillBytes: Parser<number | 'auto'> = (raw, name) => {
  if (raw.trim() === 'auto') return 'auto';
  const n = Number(raw);
  return /^\d+$/.test(raw.trim()) && Number.isSafeInteger(n) && n <= 1024 ** 4 ? n : fail(name, raw, `auto or a whole number of bytes from 0 to ${1024 ** 4}`);
};
const onOff: Parser<boolean> = (raw, name) => (raw.trim() === 'on' ? true : raw.trim() === 'off' ? false : fail(name, raw, 'on or off'));

/** An amount limit in minor units: one for every currency, or per currency (a currency not listed has 0). */
export interface MoneyLimit {
  /** For currencies not listed. */
  readonly all: number;
  readonly byCurrency: Readonly<Record<string, number>>;
}
const moneyLimit: Parser<MoneyLimit> = (raw, name) => {
  const expected = 'a whole number of minor units for every currency (e.g. 50000), or per currency (e.g. CNY:50000,USD:8000)';
  const value = raw.trim();
  if (/^\d{1,15}$/.test(value)) return Object.freeze({ all: Number(value), byCurrency: Object.freeze({}) });
  const byCurrency: Record<string, number> = {};
  for (const part of value.split(',')) {
    const m = /^([A-Z]{3}):(\d{1,15})$/.exec(part.trim());
    if (!m) return fail(name, raw, expected);
    byCurrency[m[1]!] = Number(m[2]);
  }
  return Object.freeze({ all: 0, byCurrency: Object.freeze(byCurrency) });
};
/** The limit of one currency. */
export const limitFor = (limit: MoneyLimit, currency: string): number => limit.byCurrency[currency] ?? limit.all;

/** Every setting, its default and its meaning: the single source for parsing and for docs. */
export const settings = {
  kafkaBrokers: { env: 'KAFKA_BROKERS', default: '127.0.0.1:9092', description: 'Kafka bootstrap brokers, comma separated.', parse: brokers },
  kafkaClientId: { env: 'KAFKA_CLIENT_ID', default: 'paysentinel', description: 'Client id sent to Kafka.', parse: text() },
  kafkaGroupId: { env: 'KAFKA_GROUP_ID', default: 'paysentinel-ingest', description: 'Consumer group of the ingest pipeline.', parse: text() },
  eventsTopic: { env: 'KAFKA_EVENTS_TOPIC', default: 'payments.events', description: 'Topic the payment events arrive on.', parse: topicName },
  dlqTopic: {
    env: 'KAFKA_DLQ_TOPIC',
    default: 'payments.events.dlq',
    description: 'Dead-letter topic for messages that break the contract.',
    parse: topicName,
  },
  casesTopic: {
    env: 'KAFKA_CASES_TOPIC',
    default: 'payments.cases',
    description: 'Topic every case is published to on open and on every update (key = case_id).',
    parse: topicName,
  },
  caseWebhookUrl: {
    env: 'CASE_WEBHOOK_URL',
    default: '',
    description: 'When set, every message of the cases topic is POSTed here as signed JSON, retried until a 2xx (empty = off).',
    parse: optionalHttpUrl,
  },
  caseWebhookSecret: {
    env: 'CASE_WEBHOOK_SECRET',
    default: '',
    description: 'HMAC-SHA256 key for the webhook signature; required with CASE_WEBHOOK_URL (secret: environment only).',
    parse: signingSecret,
    secret: true,
  },
  caseUpdateIntervalMs: {
    env: 'CASE_UPDATE_INTERVAL',
    default: '5m',
    description:
      'A case is published (cases topic, webhook, history line) when it opens and when support changes it, and otherwise at most once per this interval ' +
      'while hits keep arriving, with the latest hit count and evidence (0s: every update).',
    parse: duration(86_400_000),
  },
  detectionTickMs: {
    env: 'DETECTION_TICK_MS',
    default: '250',
    description: 'How often the leader starts a detection tick for entities with new events (ms); a tick that takes longer is followed at once by the next.',
    parse: int(50, 60_000),
  },
  rulesPath: {
    env: 'RULES_PATH',
    default: '',
    description: 'Folder of rule files (empty: the bundled rules/definitions). Edits are picked up without a restart.',
    parse: anyText,
  },
  featuresPath: { env: 'FEATURES_PATH', default: '', description: 'Feature catalog (empty: the bundled rules/features.json).', parse: anyText },
  leaderTopic: {
    env: 'KAFKA_LEADER_TOPIC',
    default: 'paysentinel.leader',
    description: 'Single-partition topic on which the instances elect the detection leader and the jobs leader (one consumer group each).',
    parse: topicName,
  },
  topicPartitions: {
    env: 'KAFKA_TOPIC_PARTITIONS',
    default: '6',
    description:
      'Partitions for topics created at start-up (at most 128: detection names each partition in its position statements, whose cost on ClickHouse ' +
      '18.16 grows faster than the partitions; npm run bench:partitions).',
    parse: int(1, MAX_TOPIC_PARTITIONS),
  },
  topicReplication: { env: 'KAFKA_REPLICATION_FACTOR', default: '1', description: 'Replication factor for topics created at start-up.', parse: int(1, 10) },
  clickhouseUrl: { env: 'CLICKHOUSE_URL', default: 'http://127.0.0.1:8123', description: 'ClickHouse HTTP endpoint.', parse: httpUrl },
  clickhouseUser: { env: 'CLICKHOUSE_USER', default: 'default', description: 'ClickHouse user.', parse: text() },
  clickhousePassword: { env: 'CLICKHOUSE_PASSWORD', default: '', description: 'ClickHouse password (secret: environment only).', parse: anyText, secret: true },
  clickhouseDatabase: { env: 'CLICKHOUSE_DATABASE', default: 'paysentinel', description: 'Database holding all paysentinel tables.', parse: identifier },
  batchMaxRows: {
    env: 'INGEST_BATCH_MAX_ROWS',
    default: '50000',
    description: 'Flush a ClickHouse insert when this many rows are buffered (at most 100000: the largest batch the size tests cover).',
    parse: int(1, MAX_BATCH_ROWS),
  },
  batchMaxMs: {
    env: 'INGEST_BATCH_MAX_MS',
    default: '250',
    description: 'Flush buffered rows at least this often (ms); bounds how long an event waits before detection can see it.',
    parse: int(1, 600_000),
  },
  maxBufferedRows: {
    env: 'INGEST_MAX_BUFFERED_ROWS',
    default: '60000',
    description: 'Pause fetching from Kafka while this many messages wait to be stored.',
    parse: int(1, 10_000_000),
  },
  batchMaxBytes: {
    env: 'INGEST_BATCH_MAX_BYTES',
    default: String(64 * 1024 * 1024),
    description:
      'Flush a ClickHouse insert when its messages reach this many bytes (as received plus the row made of each), so large messages make smaller batches.',
    parse: int(1024 * 1024, 1024 * 1024 * 1024),
  },
  maxBufferedBytes: {
    env: 'INGEST_MAX_BUFFERED_BYTES',
    default: String(96 * 1024 * 1024),
    description:
      'Pause fetching from Kafka while the messages waiting to be stored hold this many bytes (as INGEST_BATCH_MAX_BYTES counts them): memory stays bounded whatever their size.',
    parse: int(1024 * 1024, 16 * 1024 * 1024 * 1024),
  },
  maxMessageBytes: {
    env: 'INGEST_MAX_MESSAGE_BYTES',
    default: '65536',
    description: 'Messages larger than this go to the dead-letter topic.',
    parse: int(1, 16 * 1024 * 1024),
  },
  httpHost: { env: 'HTTP_HOST', default: '127.0.0.1', description: 'Address for /metrics and /healthz.', parse: text() },
  httpPort: { env: 'HTTP_PORT', default: '9464', description: 'Port for /metrics and /healthz (0 disables).', parse: int(0, 65535) },
  consoleHost: { env: 'CONSOLE_HOST', default: '127.0.0.1', description: 'Address the support console (paysentinel console) listens on.', parse: text() },
  consolePort: { env: 'CONSOLE_PORT', default: '8080', description: 'Port of the support console (0: any free port, printed at start).', parse: int(0, 65535) },
  consoleUsersFile: {
    env: 'CONSOLE_USERS_FILE',
    default: 'console-users.json',
    description: 'JSON file of the console users, their roles, password hashes and API token hashes (paysentinel users; relative to the working directory).',
    parse: text(),
  },
  consoleSessionSecret: {
    env: 'CONSOLE_SESSION_SECRET',
    default: '',
    description:
      'Key the console encrypts its session cookies with, at least 32 characters, the same for every console instance; required by paysentinel console ' +
      '(secret: environment only).',
    parse: sessionSecret,
    secret: true,
  },
  consoleSessionMinutes: {
    env: 'CONSOLE_SESSION_MINUTES',
    default: '480',
    description: 'A console login expires this many minutes after it was made.',
    parse: int(5, 10_080),
  },
  consoleLoginAttempts: {
    env: 'CONSOLE_LOGIN_ATTEMPTS',
    default: '10',
    description: 'Login attempts allowed per client address and minute; more are refused with 429.',
    parse: int(1, 1_000),
  },
  consoleLiveMs: {
    env: 'CONSOLE_LIVE_MS',
    default: '2000',
    description:
      'How often the console looks for case changes to push to open inbox and case pages (ms; one poll per instance, however many pages are open: a query, and a look-up of the changes it found).',
    parse: int(200, 60_000),
  },
  reportsDir: {
    env: 'REPORTS_DIR',
    default: 'reports',
    description: 'Folder the daily-report job writes its Markdown reports to (relative to the working directory).',
    parse: text(),
  },
  statementMaxBytes: {
    env: 'STATEMENT_MAX_BYTES',
    default: String(1024 ** 3),
    description: 'Statement files larger than this (bytes) are refused before they are read.',
    parse: int(1, 64 * 1024 ** 3),
  },
  statementGraceMs: {
    env: 'STATEMENT_GRACE',
    default: '30m',
    description: 'A statement period is reconciled this long after it ends, so attempts near the cut have their final status (30m, 2h, ...).',
    parse: duration(7 * 86_400_000),
  },
  statementsDir: {
    env: 'STATEMENTS_DIR',
    default: '',
    description: 'Folder the scheduled statements job imports new statement files from, as <format>/<file> or <format>/<channel>/<file> (empty = none).',
    parse: anyText,
  },
  automation: {
    env: 'AUTOMATION',
    default: 'dry-run',
    description:
      'What automatic rules do: off (support gets every case, nothing is recorded), dry-run (commands are recorded and shown as "would have sent", nothing ' +
      'is published, support gets the case) or on (commands are published to the gateway). Pause and resume without a restart: paysentinel ' +
      'automation pause|resume.',
    parse: automationMode,
  },
  automationRefunds: {
    env: 'AUTOMATION_REFUNDS',
    default: 'off',
    description: 'on: automatic rules may refund (within AUTO_REFUND_MAX_MINOR and AUTO_REFUND_DAILY_MINOR); off: a refund case goes to support.',
    parse: onOff,
  },
  autoRefundMaxMinor: {
    env: 'AUTO_REFUND_MAX_MINOR',
    default: '0',
    description:
      'Largest automatic refund, in minor units: one number for every currency or per currency (CNY:50000,USD:8000); a larger refund goes to support.',
    parse: moneyLimit,
  },
  autoRefundDailyMinor: {
    env: 'AUTO_REFUND_DAILY_MINOR',
    default: '0',
    description: 'Automatic refunds per UTC day and currency, in minor units (one number or CNY:500000,USD:80000); a refund over the budget goes to support.',
    parse: moneyLimit,
  },
  commandsTopic: {
    env: 'KAFKA_COMMANDS_TOPIC',
    default: 'payments.commands',
    description: 'Topic the commands to the payment gateway are published to (key = order id, or the blocked entity id).',
    parse: topicName,
  },
  commandResultsTopic: {
    env: 'KAFKA_COMMAND_RESULTS_TOPIC',
    default: 'payments.command-results',
    description: 'Topic the gateway answers commands on ({command_id, status: done|rejected|failed, detail}).',
    parse: topicName,
  },
  requeryAfterMs: {
    env: 'REQUERY_AFTER',
    default: '5m',
    description: 'The requery job asks the gateway for the status of attempts still processing this long, and asks again for one attempt at most this often.',
    parse: duration(86_400_000),
  },
  requeryMaxPerMinute: {
    env: 'REQUERY_MAX_PER_MINUTE',
    default: '60',
    description: 'Most status re-queries the requery job issues per minute (fewer in the peak hours the retry-policy job found).',
    parse: int(1, 100_000),
  },
  ratesPriority: {
    env: 'RATES_PRIORITY',
    default: 'above-jobs',
    description:
      "ClickHouse priority of the scheduled rates job's statements, on one thread in every case. above-jobs: they pause while any of ingest's or " +
      "detection's run, and the other jobs' (reconcile's 24-hour grouping among them) pause while one of theirs runs. " +
      "background: the other jobs' priority. foreground: ingest's and detection's (nothing pauses them; they share the cores with " +
      'detection). See docs/benchmarks.md.',
    parse: jobPriority,
  },
  jobsSpillBytes: {
    env: 'JOBS_SPILL_BYTES',
    default: 'auto',
    description:
      "A scheduled or by-hand job's grouping or sorting continues on disk once it holds this many bytes (ClickHouse's " +
      'max_bytes_before_external_group_by and max_bytes_before_external_sort), so a window holding many events finishes, ' +
      "more slowly, instead of failing at the query's memory limit. auto: half that limit (max_memory_usage as the server " +
      "reports it for this user, as ClickHouse advises), read when the jobs start; without such a limit the server's own settings " +
      'apply (ClickHouse 25.1 and later spill at half the available memory; on older servers with no per-query limit, set a number). ' +
      '0: never by this setting. Spilling costs CPU: up to 2.4 times as much where it was not needed (docs/benchmarks.md).',
    parse: spillBytes,
  },
  logLevel: { env: 'LOG_LEVEL', default: 'info', description: 'debug, info, warn or error.', parse: logLevel },
} satisfies Record<string, Setting<unknown>>;

type Settings = typeof settings;
/** The typed, frozen configuration every stage receives. */
export type Config = Readonly<{ [K in keyof Settings]: ReturnType<Settings[K]['parse']> }>;

/**
 * Parses the environment once. Collects every problem before failing so a user fixes them
 * all in one go; each message names the variable and what it accepts.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, setting] of Object.entries(settings) as [string, Setting<unknown>][]) {
    const raw = env[setting.env] ?? setting.default;
    try {
      out[key] = setting.parse(raw, setting.env);
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (out.caseWebhookUrl && !out.caseWebhookSecret) {
    problems.push(
      'CASE_WEBHOOK_SECRET is required when CASE_WEBHOOK_URL is set: receivers verify every delivery with it (generate one with `openssl rand -hex 32`).',
    );
  }
  const refundLimits = [out.autoRefundMaxMinor, out.autoRefundDailyMinor] as (MoneyLimit | undefined)[];
  if (out.automationRefunds === true && refundLimits.some((l) => l && l.all === 0 && Object.keys(l.byCurrency).length === 0)) {
    problems.push(
      'AUTOMATION_REFUNDS=on needs AUTO_REFUND_MAX_MINOR and AUTO_REFUND_DAILY_MINOR (e.g. 50000 and 500000, or CNY:50000,USD:8000): refunds move money, ' +
        'so their ceilings are never implied.',
    );
  }
  if (problems.length > 0) {
    throw new PaysentinelError('CONFIG_INVALID', `Configuration is invalid:\n  - ${problems.join('\n  - ')}`);
  }
  return Object.freeze(out) as Config;
}

/** Markdown table of the settings, for the README and `paysentinel config`. */
export function describeSettings(): string {
  const rows = Object.values(settings as Record<string, Setting<unknown>>).map(
    (s) => `| \`${s.env}\` | \`${s.default === '' ? '(empty)' : s.default}\` | ${s.description} |`,
  );
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
