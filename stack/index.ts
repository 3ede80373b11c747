import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import {
  CLICKHOUSE_APT_PACKAGES,
  CLICKHOUSE_PROCESS_MARKER,
  clickhouseConfigXml,
  clickhousePaths,
  clickhouseServerArgs,
  clickhouseUsersXml,
  findClickHouseServer,
  nativePort,
} from './clickhouse.ts';
import { clickhouseEndpoint, isLocalHost, kafkaEndpoint } from './endpoints.ts';
import {
  KAFKA_MAIN_CLASS,
  KAFKA_VERSION,
  brokerArgs,
  controllerPort,
  kafkaLibsComplete,
  kafkaLog4jProperties,
  kafkaPaths,
  kafkaServerProperties,
  mvnCopyArgs,
  newClusterId,
  resetKafkaLibs,
  storageFormatArgs,
  storageFormatted,
  writeKafkaLibsMarker,
} from './kafka.ts';
import { clickhouseVersion, probeClickHouse, probeKafka, type ProbeResult } from './probe.ts';
import { findExecutable, ourLivePid, readPid, removePidFile, runLogged, spawnDetached, stopPid, tailFile, waitUntil, type DetachedProcess } from './process.ts';

/** The services the local stack manages. */
export type ServiceName = 'kafka' | 'clickhouse';

/** What `status()` knows about one service. */
export interface ServiceStatus {
  name: ServiceName;
  /** Where clients reach it: host:port for Kafka, the HTTP URL for ClickHouse. */
  endpoint: string;
  /** Whether the endpoint is on this machine, i.e. whether `up` may start it. */
  local: boolean;
  answering: boolean;
  /** True when the pid file names a live process of this service that we started. */
  startedByUs: boolean;
  pid: number | null;
  /** What answered (cluster id, server version) or why it did not. */
  detail: string;
  /** Log file to read when something is wrong (only for services we start). */
  logFile: string | null;
}

/** Status of the whole local stack; `ok` when every service answers. */
export interface StackStatus {
  ok: boolean;
  services: Record<ServiceName, ServiceStatus>;
}

/** Starts, stops and inspects the Kafka and ClickHouse the pipeline and tests use. */
export interface LocalStack {
  /** Makes both services answer, starting only those that do not already. */
  up(): Promise<StackStatus>;
  /** Stops what we started (pid files); leaves services started by others alone. */
  down(): Promise<void>;
  status(): Promise<StackStatus>;
  startKafka(): Promise<ServiceStatus>;
  /** Resolves true when a broker we had started was stopped. */
  stopKafka(): Promise<boolean>;
  startClickHouse(): Promise<ServiceStatus>;
  /** Resolves true when a server we had started was stopped; its data is kept. */
  stopClickHouse(): Promise<boolean>;
}

export interface LocalStackOptions {
  config: Pick<Config, 'kafkaBrokers' | 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword'>;
  /** Project root: holds stack/kafka/pom.xml; `.cache/` and `.stack/` are created in it. */
  rootDir: string;
  logger: Logger;
  /** Read for CLICKHOUSE_NATIVE_PORT, PATH and JAVA_HOME. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Human-readable progress lines. @default written to stderr */
  progress?: (line: string) => void;
  /** How long to wait for a started service to answer. @default 120000 */
  startTimeoutMs?: number;
  /** SIGTERM grace period before SIGKILL. @default 20000 */
  stopGraceMs?: number;
}

/** One service as the generic start/stop/status logic sees it. */
interface Service {
  name: ServiceName;
  endpoint: string;
  local: boolean;
  pidFile: string;
  /** Substring of the command line that proves a pid is this service. */
  processMarker: string;
  /** The service's own log, shown by `status`. */
  mainLog: string;
  /** Their tails are printed when the service does not come up. */
  logFiles: string[];
  probe(): Promise<ProbeResult>;
  /** Extra check once the endpoint answers, e.g. a real query. */
  verify?(): Promise<ProbeResult>;
  /** Installs, downloads and writes config: everything before the process starts. */
  prepare(): Promise<void>;
  spawn(): Promise<DetachedProcess>;
}

/**
 * Creates the local stack manager. Nothing happens until a method is called; every method
 * can be called again at any time (the integration tests stop and start ClickHouse while
 * the pipeline runs), and none of them touches a process it did not start.
 */
export function createLocalStack(options: LocalStackOptions): LocalStack {
  const { config, rootDir, logger } = options;
  const env = options.env ?? process.env;
  const progress = options.progress ?? ((line: string) => process.stderr.write(`stack: ${line}\n`));
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  const stopGraceMs = options.stopGraceMs ?? 20_000;
  const rel = (p: string) => relative(rootDir, p) || '.';
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  const kPaths = kafkaPaths(rootDir);
  let kafkaJava = 'java';
  const broker = kafkaEndpoint(config.kafkaBrokers);
  const kafka: Service = {
    name: 'kafka',
    endpoint: config.kafkaBrokers.join(','),
    // Only a single local broker can be started here; a list means an existing cluster.
    local: broker.all.length === 1 && isLocalHost(broker.host),
    pidFile: kPaths.pidFile,
    processMarker: KAFKA_MAIN_CLASS,
    mainLog: `${kPaths.logDir}/server.log`,
    logFiles: [kPaths.outFile, `${kPaths.logDir}/server.log`],
    probe: () => probeKafka(config.kafkaBrokers),
    async prepare() {
      const java = env.JAVA_HOME ? `${env.JAVA_HOME}/bin/java` : findExecutable('java', env);
      if (!java) throw missingTool('java', 'Java 17 or newer runs the local Kafka broker', 'openjdk-17-jre-headless');
      if (!kafkaLibsComplete(kPaths)) {
        if (!findExecutable('mvn', env)) throw missingTool('mvn', 'Maven fetches the Kafka jars once', 'maven');
        progress(`kafka: fetching Kafka ${KAFKA_VERSION} jars with Maven into ${rel(kPaths.libsDir)} (first run only)`);
        const started = Date.now();
        resetKafkaLibs(kPaths);
        await runLogged('mvn', mvnCopyArgs(kPaths), { cwd: rootDir, env, logFile: kPaths.mvnLog });
        writeKafkaLibsMarker(kPaths);
        progress(`kafka: jars ready in ${seconds(started)}`);
      }
      for (const dir of [kPaths.dir, kPaths.dataDir, kPaths.logDir]) mkdirSync(dir, { recursive: true });
      // Rewritten on every start so a changed KAFKA_BROKERS port takes effect.
      writeFileSync(kPaths.serverProperties, kafkaServerProperties({ broker, controllerPort: controllerPort(broker.port), dataDir: kPaths.dataDir }));
      writeFileSync(kPaths.log4jProperties, kafkaLog4jProperties(kPaths.logDir));
      if (!storageFormatted(kPaths)) {
        const clusterId = newClusterId();
        progress(`kafka: formatting storage in ${rel(kPaths.dataDir)} (cluster id ${clusterId})`);
        await runLogged(java, storageFormatArgs(kPaths, clusterId), { cwd: kPaths.dir, env, logFile: kPaths.outFile });
      }
      kafkaJava = java;
    },
    spawn: () => spawnDetached({ command: kafkaJava, args: brokerArgs(kPaths), cwd: kPaths.dir, outFile: kPaths.outFile, pidFile: kPaths.pidFile, env }),
  };

  const cPaths = clickhousePaths(rootDir);
  const http = clickhouseEndpoint(config.clickhouseUrl);
  let clickhouseBinary = '';
  const clickhouse: Service = {
    name: 'clickhouse',
    endpoint: http.url,
    // We generate plain-HTTP configs only; an https URL must point at a server run elsewhere.
    local: isLocalHost(http.host) && !http.secure,
    pidFile: cPaths.pidFile,
    processMarker: CLICKHOUSE_PROCESS_MARKER,
    mainLog: cPaths.logFile,
    logFiles: [cPaths.outFile, cPaths.errorLogFile],
    probe: () => probeClickHouse(http.url),
    verify: () => clickhouseVersion(http.url, config.clickhouseUser, config.clickhousePassword),
    async prepare() {
      let binary = findClickHouseServer(env);
      if (!binary) {
        const install = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${CLICKHOUSE_APT_PACKAGES.join(' ')}`;
        if (!isRoot) {
          throw new PaysentinelError(
            'STACK_FAILED',
            `clickhouse-server is not installed. Install it (as root) with:\n  sudo sh -c '${install}'\nthen run "paysentinel stack up" again.`,
          );
        }
        progress(`clickhouse: clickhouse-server is missing; installing ${CLICKHOUSE_APT_PACKAGES.join(' ')} with apt-get`);
        const aptLog = `${cPaths.dir}/apt.log`;
        const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
        await runLogged('apt-get', ['update'], { cwd: rootDir, env: aptEnv, logFile: aptLog });
        await runLogged('apt-get', ['install', '-y', ...CLICKHOUSE_APT_PACKAGES], { cwd: rootDir, env: aptEnv, logFile: aptLog });
        binary = findClickHouseServer(env);
        if (!binary)
          throw new PaysentinelError('STACK_FAILED', `apt-get installed ${CLICKHOUSE_APT_PACKAGES.join(' ')} but no clickhouse-server binary was found.`);
      }
      clickhouseBinary = binary;
      for (const dir of [cPaths.dir, cPaths.dataDir, cPaths.tmpDir, cPaths.userFilesDir, cPaths.formatSchemaDir, cPaths.logDir]) {
        mkdirSync(dir, { recursive: true });
      }
      writeFileSync(cPaths.configXml, clickhouseConfigXml({ http, nativePort: nativePort(env), paths: cPaths }));
      // Holds a password hash: readable by the owner only.
      writeFileSync(cPaths.usersXml, clickhouseUsersXml({ user: config.clickhouseUser, password: config.clickhousePassword }), { mode: 0o600 });
    },
    spawn: () =>
      spawnDetached({ command: clickhouseBinary, args: clickhouseServerArgs(cPaths), cwd: cPaths.dir, outFile: cPaths.outFile, pidFile: cPaths.pidFile, env }),
  };

  const describe = async (s: Service): Promise<ServiceStatus> => {
    const pid = ourLivePid(s.pidFile, s.processMarker);
    let probe = await s.probe();
    if (probe.ok && s.verify) {
      const verified = await s.verify();
      probe = verified.ok ? verified : { ok: false, detail: `answers ping, but ${verified.detail}` };
    }
    return {
      name: s.name,
      endpoint: s.endpoint,
      local: s.local,
      answering: probe.ok,
      startedByUs: pid !== null,
      pid,
      detail: probe.detail,
      logFile: pid !== null || readPid(s.pidFile) !== null ? rel(s.mainLog) : null,
    };
  };

  const failWithLogs = (s: Service, why: string): never => {
    const tails = s.logFiles
      .map((f) => ({ f, tail: tailFile(f, 30) }))
      .filter((t) => t.tail !== '')
      .map((t) => `--- last lines of ${rel(t.f)} ---\n${t.tail}`);
    throw new PaysentinelError(
      'STACK_FAILED',
      `${s.name} did not come up at ${s.endpoint}: ${why}.${tails.length ? `\n${tails.join('\n')}` : ' (no log output)'}`,
    );
  };

  const start = async (s: Service): Promise<ServiceStatus> => {
    const first = await s.probe();
    const running = ourLivePid(s.pidFile, s.processMarker);
    if (first.ok) {
      progress(`${s.name}: already answering at ${s.endpoint}${running ? ` (pid ${running}, started by us)` : ' (not started by us)'}; starting nothing`);
    } else {
      let proc: DetachedProcess;
      const startedFor = readText(endpointFile(s));
      if (running !== null && startedFor !== null && startedFor !== s.endpoint) {
        throw new PaysentinelError(
          'STACK_FAILED',
          `${s.name} was started by us for ${startedFor} (pid ${running}), but the configuration now says ${s.endpoint}. Run "paysentinel stack down" ` +
            `first, then "stack up" again.`,
        );
      }
      if (running !== null) {
        // Started by an earlier `up` that is still booting or hung: wait, never start a twin.
        progress(`${s.name}: our process ${running} is running but not answering yet; waiting`);
        proc = { pid: running, exited: () => ourLivePid(s.pidFile, s.processMarker) === null };
      } else {
        if (!s.local) {
          throw new PaysentinelError(
            'STACK_FAILED',
            `${s.name} at ${s.endpoint} does not answer (${first.detail}) and is not a single local address, so it cannot be started here. Start it ` +
              `yourself or point ${s.name === 'kafka' ? 'KAFKA_BROKERS' : 'CLICKHOUSE_URL'} at a local address.`,
          );
        }
        removePidFile(s.pidFile);
        await s.prepare();
        progress(`${s.name}: starting at ${s.endpoint}`);
        proc = await s.spawn();
        writeFileSync(endpointFile(s), `${s.endpoint}\n`);
        logger.debug('stack service spawned', { service: s.name, pid: proc.pid });
      }
      const started = Date.now();
      const waited = await waitUntil(async () => (await s.probe()).ok, {
        timeoutMs: startTimeoutMs,
        giveUp: () => (proc.exited() ? `process ${proc.pid} exited` : null),
      });
      if (!waited.ok) failWithLogs(s, waited.reason);
      progress(`${s.name}: answering after ${seconds(started)} (pid ${proc.pid})`);
    }
    const status = await describe(s);
    if (!status.answering) failWithLogs(s, status.detail);
    progress(`${s.name}: ready at ${s.endpoint}${status.detail ? ` (${status.detail})` : ''}`);
    return status;
  };

  const stop = async (s: Service): Promise<boolean> => {
    const pid = ourLivePid(s.pidFile, s.processMarker);
    if (pid === null) {
      // A pid file without its process is left from a crash or reboot.
      removePidFile(s.pidFile);
      progress(`${s.name}: not started by us; nothing to stop`);
      return false;
    }
    const started = Date.now();
    progress(`${s.name}: stopping pid ${pid}`);
    const how = await stopPid(pid, { graceMs: stopGraceMs });
    removePidFile(s.pidFile);
    removePidFile(endpointFile(s));
    progress(`${s.name}: ${how === 'killed' ? `did not stop within ${stopGraceMs / 1000} s, killed` : 'stopped'} after ${seconds(started)}`);
    return true;
  };

  const status = async (): Promise<StackStatus> => {
    const [k, c] = await Promise.all([describe(kafka), describe(clickhouse)]);
    return { ok: k.answering && c.answering, services: { kafka: k, clickhouse: c } };
  };

  return {
    async up() {
      // Both at once: the first run's Maven download and ClickHouse start overlap.
      const results = await Promise.allSettled([start(kafka), start(clickhouse)]);
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (failures.length > 0) {
        const messages = failures.map((e) => (e instanceof Error ? e.message : String(e)));
        throw new PaysentinelError('STACK_FAILED', messages.join('\n\n'), { cause: failures[0] });
      }
      return status();
    },
    async down() {
      await Promise.all([stop(kafka), stop(clickhouse)]);
    },
    status,
    startKafka: () => start(kafka),
    stopKafka: () => stop(kafka),
    startClickHouse: () => start(clickhouse),
    stopClickHouse: () => stop(clickhouse),
  };
}

/** Remembers which endpoint a started process serves, to spot a changed configuration. */
const endpointFile = (s: Service) => join(dirname(s.pidFile), 'endpoint');

const readText = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
};

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

const missingTool = (tool: string, why: string, debianPackage: string) =>
  new PaysentinelError('STACK_FAILED', `${tool} is not on PATH. ${why}: install it, e.g. "apt-get install -y ${debianPackage}" on Debian.`);
