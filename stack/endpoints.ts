import { isIP } from 'node:net';
import { PaysentinelError } from '../errors/index.ts';

/** A host and port a service listens on. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Where ClickHouse answers HTTP, split for the config generator. */
export interface HttpEndpoint extends Endpoint {
  /** Normalised URL without a trailing slash, as given in CLICKHOUSE_URL. */
  url: string;
  secure: boolean;
}

/**
 * Splits "host:port" or "[v6]:port". The config parser already checked the shape; this
 * still fails with a clear error so the stack code never works on a half-parsed address.
 */
export function parseHostPort(raw: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(raw.trim()) ?? /^([^:[\]]+):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[2]);
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PaysentinelError('CONFIG_INVALID', `"${raw}" is not a host:port address.`);
  }
  return { host: m[1], port };
}

/** Formats an endpoint back to "host:port", bracketing IPv6 literals. */
export function formatHostPort({ host, port }: Endpoint): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for addresses of this machine that we may start a service on. */
export function isLocalHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * The broker we would run locally. Only a single broker can be started here, so a list of
 * several is fine for connecting to an existing cluster but not for starting one.
 */
export function kafkaEndpoint(brokers: readonly string[]): Endpoint & { all: Endpoint[] } {
  const all = brokers.map(parseHostPort);
  const first = all[0];
  if (!first) throw new PaysentinelError('CONFIG_INVALID', 'KAFKA_BROKERS is empty.');
  return { ...first, all };
}

/** Host and port of CLICKHOUSE_URL, with the scheme's default port when none is given. */
export function clickhouseEndpoint(url: string): HttpEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new PaysentinelError('CONFIG_INVALID', `CLICKHOUSE_URL "${url}" is not a URL.`, { cause: err });
  }
  const secure = u.protocol === 'https:';
  const port = u.port === '' ? (secure ? 8443 : 8123) : Number(u.port);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port, url: url.replace(/\/$/, ''), secure };
}

/**
 * Addresses a local server should bind for a configured host. "localhost" may resolve to
 * either family depending on the client, so it gets both loopbacks; an explicit IP gets
 * exactly that address.
 */
export function bindAddresses(host: string): string[] {
  const h = host.toLowerCase();
  return h === 'localhost' ? ['127.0.0.1', '::1'] : [h];
}
