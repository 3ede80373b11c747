import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// Checks docker-compose.yml statically: there is no Docker engine in CI, so mistakes here
// (a missing mount source, a floating image tag, a wrong service name) would otherwise
// only show up on a user's machine.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  environment?: Record<string, unknown> | string[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: unknown;
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

/** Environment as a map, whichever of the two compose syntaxes is used. */
const envOf = (s: Service): Record<string, string> => {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
};

/** Every volume as { source, target, bind }, whichever syntax is used. */
const mountsOf = (s: Service) =>
  (s.volumes ?? []).map((v) => {
    if (typeof v === 'string') {
      const [source = '', target = ''] = v.split(':');
      return { source, target, bind: /^[./~]/.test(source) };
    }
    return { source: v.source ?? '', target: v.target ?? '', bind: v.type === 'bind' };
  });

const readYamlDir = (dir: string) =>
  readdirSync(join(root, dir))
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => ({ file: `${dir}/${f}`, doc: parse(readFileSync(join(root, dir, f), 'utf8')) as Record<string, unknown> }));

describe('docker-compose.yml', () => {
  it('defines the four services', () => {
    expect(Object.keys(services).sort()).toEqual(['clickhouse', 'grafana', 'kafka', 'paysentinel']);
  });

  it('bind-mounts only paths that exist in the repository', () => {
    const binds = Object.values(services).flatMap((s) => mountsOf(s).filter((m) => m.bind));
    expect(binds.length).toBeGreaterThan(0);
    for (const m of binds) {
      expect(m.source.startsWith('./'), `${m.source} should be relative to the repo`).toBe(true);
      expect(existsSync(join(root, m.source)), `${m.source} is mounted but missing`).toBe(true);
    }
  });

  it('declares every named volume it uses', () => {
    const named = Object.values(services).flatMap((s) =>
      mountsOf(s)
        .filter((m) => !m.bind)
        .map((m) => m.source),
    );
    for (const name of named) expect(Object.keys(compose.volumes ?? {}), name).toContain(name);
  });

  it('builds from contexts and Dockerfiles that exist', () => {
    const builds = Object.entries(services).filter(([, s]) => s.build !== undefined);
    expect(builds.map(([name]) => name)).toContain('paysentinel');
    for (const [name, s] of builds) {
      const context = typeof s.build === 'string' ? s.build : (s.build?.context ?? '.');
      const dockerfile = typeof s.build === 'string' ? 'Dockerfile' : (s.build?.dockerfile ?? 'Dockerfile');
      expect(statSync(join(root, context)).isDirectory(), `${name}: context ${context}`).toBe(true);
      expect(existsSync(join(root, context, dockerfile)), `${name}: ${dockerfile}`).toBe(true);
    }
  });

  it('pins every image to an explicit tag other than latest', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.image === undefined) continue;
      const tag = /:([^/:]+)$/.exec(s.image)?.[1];
      expect(tag, `${name}: ${s.image} has no tag`).toBeDefined();
      expect(tag, `${name}: ${s.image}`).not.toMatch(/^latest$/i);
    }
    for (const name of ['kafka', 'clickhouse', 'grafana']) expect(services[name]?.image, name).toBeDefined();
  });

  it('pins the Dockerfile base image too', () => {
    const from = /^FROM\s+(\S+)/m.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'))?.[1] ?? '';
    expect(from).toMatch(/^node:20[\w.-]*$/);
  });

  it('has Grafana install a pinned grafana-clickhouse-datasource', () => {
    const plugins = envOf(services.grafana!).GF_INSTALL_PLUGINS ?? '';
    const entry = plugins
      .split(',')
      .map((p) => p.trim())
      .find((p) => p.startsWith('grafana-clickhouse-datasource'));
    expect(entry).toMatch(/^grafana-clickhouse-datasource \d+\.\d+\.\d+$/);
  });

  it('points paysentinel at the compose services, on the ports they serve inside the network', () => {
    const env = envOf(services.paysentinel!);
    const kafkaAdvertised = envOf(services.kafka!).KAFKA_ADVERTISED_LISTENERS ?? '';
    for (const broker of (env.KAFKA_BROKERS ?? '').split(',')) {
      const host = broker.split(':')[0]!;
      expect(Object.keys(services), `KAFKA_BROKERS host ${host}`).toContain(host);
      // The broker must advertise exactly this address, or clients get redirected elsewhere.
      expect(kafkaAdvertised.split(',').map((l) => l.replace(/^\w+:\/\//, ''))).toContain(broker);
    }
    const ch = new URL(env.CLICKHOUSE_URL ?? '');
    expect(Object.keys(services)).toContain(ch.hostname);
    expect(ch.port).toBe('8123');
    expect(env.HTTP_HOST).toBe('0.0.0.0');
  });

  it('starts paysentinel only after healthy dependencies', () => {
    const deps = services.paysentinel!.depends_on as Record<string, { condition?: string }>;
    expect(Object.keys(deps).sort()).toEqual(['clickhouse', 'kafka']);
    for (const [name, d] of Object.entries(deps)) {
      expect(d.condition, name).toBe('service_healthy');
      expect(services[name]?.healthcheck, `${name} needs a healthcheck`).toBeDefined();
    }
  });

  it('gives paysentinel and Grafana the same ClickHouse credentials as the server', () => {
    const server = envOf(services.clickhouse!);
    for (const name of ['paysentinel', 'grafana']) {
      const env = envOf(services[name]!);
      expect(env.CLICKHOUSE_USER, name).toBe(server.CLICKHOUSE_USER);
      expect(env.CLICKHOUSE_PASSWORD, name).toBe(server.CLICKHOUSE_PASSWORD);
    }
  });
});

describe('Grafana provisioning', () => {
  const grafanaMounts = mountsOf(services.grafana!);
  const mountedAt = (source: string) => grafanaMounts.find((m) => posix.normalize(m.source) === posix.normalize(source))?.target;

  it('mounts the provisioning folder where Grafana reads it', () => {
    expect(mountedAt('./dashboards/provisioning')).toBe('/etc/grafana/provisioning');
  });

  it('gives every data source a unique uid, including the fixed paysentinel one', () => {
    const uids = readYamlDir('dashboards/provisioning/datasources').flatMap(({ file, doc }) =>
      ((doc.datasources as { uid?: string }[] | undefined) ?? []).map((d) => {
        expect(d.uid, `${file}: data source without uid`).toBeTruthy();
        return d.uid!;
      }),
    );
    expect(uids).toContain('paysentinel-clickhouse');
    expect(new Set(uids).size).toBe(uids.length);
  });

  it('uses the plugin Grafana installs and the compose ClickHouse service', () => {
    type DataSource = { uid?: string; type?: string; jsonData: Record<string, unknown>; secureJsonData: Record<string, unknown> };
    const all = readYamlDir('dashboards/provisioning/datasources').flatMap(({ doc }) => (doc.datasources as DataSource[] | undefined) ?? []);
    const ds = all.find((d) => d.uid === 'paysentinel-clickhouse');
    if (!ds) throw new Error('no data source with uid paysentinel-clickhouse');
    expect(ds.type).toBe('grafana-clickhouse-datasource');
    expect(envOf(services.grafana!).GF_INSTALL_PLUGINS).toContain(ds.type);
    expect(Object.keys(services)).toContain(ds.jsonData.host);
    expect(ds.jsonData.protocol).toBe('http');
    expect(ds.jsonData.port).toBe(8123);
    // Credentials come from the container environment, never from the file.
    expect(ds.jsonData.username).toBe('${CLICKHOUSE_USER}');
    expect(ds.secureJsonData.password).toBe('${CLICKHOUSE_PASSWORD}');
  });

  it('loads dashboards from the path dashboards/json is mounted at', () => {
    const target = mountedAt('./dashboards/json');
    expect(target).toBeDefined();
    const providers = readYamlDir('dashboards/provisioning/dashboards').flatMap(
      ({ doc }) => (doc.providers as { type?: string; options?: { path?: string } }[]) ?? [],
    );
    expect(providers.length).toBeGreaterThan(0);
    for (const p of providers) {
      expect(p.type).toBe('file');
      expect(p.options?.path).toBe(target);
    }
  });
});
