import { Kafka, logLevel } from 'kafkajs';

/** Outcome of one health probe; `detail` says what answered or why not. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });

/**
 * Asks the brokers for cluster metadata. Short timeouts and no retries: a probe should say
 * "not there" quickly, the caller decides whether to poll again. kafkajs' own logging is off
 * because a refused connection is the expected answer here.
 */
export async function probeKafka(brokers: readonly string[], timeoutMs = 4000): Promise<ProbeResult> {
  const kafka = new Kafka({
    clientId: 'paysentinel-stack-probe',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: Math.min(1500, timeoutMs),
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    const cluster = await withTimeout(
      (async () => {
        await admin.connect();
        return admin.describeCluster();
      })(),
      timeoutMs,
      'kafka',
    );
    if (cluster.brokers.length === 0) return { ok: false, detail: 'no brokers in metadata yet' };
    return { ok: true, detail: `cluster ${cluster.clusterId}, ${cluster.brokers.length} broker(s)` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  } finally {
    await withTimeout(admin.disconnect(), 1000, 'disconnect').catch(() => {});
  }
}

/** GET /ping must answer exactly "Ok." (every ClickHouse version since 1.1 does). */
export async function probeClickHouse(url: string, timeoutMs = 3000): Promise<ProbeResult> {
  try {
    const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.text()).trim();
    return res.ok && body === 'Ok.' ? { ok: true, detail: 'ping Ok.' } : { ok: false, detail: `ping answered ${res.status} ${body.slice(0, 80)}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return { ok: false, detail: cause ?? (err as Error).message };
  }
}

/**
 * Runs `SELECT version()` as the configured user: proves the server accepts our credentials
 * and queries, not only that its HTTP port is open.
 */
export async function clickhouseVersion(url: string, user: string, password: string, timeoutMs = 5000): Promise<ProbeResult> {
  try {
    const res = await fetch(`${url}/`, {
      method: 'POST',
      body: 'SELECT version()',
      headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.text()).trim();
    return res.ok ? { ok: true, detail: body } : { ok: false, detail: `HTTP ${res.status}: ${body.split('\n')[0]?.slice(0, 200)}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}
