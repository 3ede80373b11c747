import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  KAFKA_MAIN_CLASS,
  brokerArgs,
  controllerPort,
  kafkaLibsComplete,
  kafkaLog4jProperties,
  kafkaPaths,
  kafkaServerProperties,
  mvnCopyArgs,
  newClusterId,
  storageFormatArgs,
  storageFormatted,
  writeKafkaLibsMarker,
} from './kafka.ts';

/** server.properties as a map, failing on duplicate keys (Kafka would silently take the last). */
const parseProperties = (text: string) => {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    const key = line.slice(0, i);
    expect(map.has(key), `duplicate ${key}`).toBe(false);
    map.set(key, line.slice(i + 1));
  }
  return map;
};

const temps: string[] = [];
const tempRoot = () => {
  const dir = mkdtempSync(join(tmpdir(), 'paysentinel-stack-'));
  temps.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('kafkaServerProperties', () => {
  const props = parseProperties(kafkaServerProperties({ broker: { host: '127.0.0.1', port: 9092 }, controllerPort: 9093, dataDir: '/x/data' }));

  it('describes a single combined KRaft node', () => {
    expect(props.get('process.roles')).toBe('broker,controller');
    expect(props.get('node.id')).toBe('1');
    expect(props.get('controller.quorum.voters')).toBe('1@127.0.0.1:9093');
    expect(props.get('controller.listener.names')).toBe('CONTROLLER');
  });

  it('listens and advertises on the configured broker address', () => {
    expect(props.get('listeners')).toBe('PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093');
    expect(props.get('advertised.listeners')).toBe('PLAINTEXT://127.0.0.1:9092');
    // Every listener name used must have a protocol, or the broker refuses to start.
    const mapped = new Set(
      props
        .get('listener.security.protocol.map')!
        .split(',')
        .map((e) => e.split(':')[0]),
    );
    for (const l of props.get('listeners')!.split(',')) expect(mapped.has(l.split(':')[0]!)).toBe(true);
  });

  it('uses replication settings a single node can satisfy', () => {
    for (const key of [
      'offsets.topic.replication.factor',
      'transaction.state.log.replication.factor',
      'transaction.state.log.min.isr',
      'min.insync.replicas',
      'default.replication.factor',
    ]) {
      expect(props.get(key), key).toBe('1');
    }
    expect(props.get('group.initial.rebalance.delay.ms')).toBe('0');
    expect(props.get('num.partitions')).toBe('6');
    expect(props.get('auto.create.topics.enable')).toBe('true');
    expect(props.get('log.dirs')).toBe('/x/data');
    expect(Number(props.get('log.retention.hours'))).toBeGreaterThan(0);
  });

  it('advertises 127.0.0.1 for "localhost" and brackets IPv6', () => {
    const local = parseProperties(kafkaServerProperties({ broker: { host: 'localhost', port: 19092 }, controllerPort: 9093, dataDir: '/d' }));
    expect(local.get('advertised.listeners')).toBe('PLAINTEXT://127.0.0.1:19092');
    const v6 = parseProperties(kafkaServerProperties({ broker: { host: '::1', port: 9092 }, controllerPort: 9093, dataDir: '/d' }));
    expect(v6.get('advertised.listeners')).toBe('PLAINTEXT://[::1]:9092');
  });
});

describe('controllerPort', () => {
  it('puts the controller next to the broker, 9093 for the default 9092', () => {
    expect(controllerPort(9092)).toBe(9093);
    expect(controllerPort(29092)).toBe(29093);
    expect(controllerPort(65535)).toBe(65534);
  });
});

describe('kafkaLog4jProperties', () => {
  it('logs to rolling files in the given folder', () => {
    const text = kafkaLog4jProperties('/x/logs');
    expect(text).toMatch(/^log4j\.rootLogger=INFO, server$/m);
    expect(text).toContain('log4j.appender.server.File=/x/logs/server.log');
    expect(text).toContain('log4j.appender.server=org.apache.log4j.RollingFileAppender');
    expect(text).not.toMatch(/ConsoleAppender/);
  });
});

describe('newClusterId', () => {
  it('is 16 bytes as unpadded URL-safe base64, as StorageTool requires', () => {
    const id = newClusterId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    expect(newClusterId(() => Buffer.alloc(16, 0xff))).toBe('_____________________w');
  });
});

describe('jar cache marker', () => {
  const setup = () => {
    const root = tempRoot();
    const paths = kafkaPaths(root);
    mkdirSync(join(root, 'stack', 'kafka'), { recursive: true });
    writeFileSync(paths.pom, '<project>v1</project>');
    mkdirSync(paths.libsDir, { recursive: true });
    return paths;
  };

  it('is incomplete until the marker is written, then complete', () => {
    const paths = setup();
    writeFileSync(join(paths.libsDir, 'kafka_2.13-3.9.1.jar'), '');
    writeFileSync(join(paths.libsDir, 'kafka-clients-3.9.1.jar'), '');
    expect(kafkaLibsComplete(paths)).toBe(false);
    writeKafkaLibsMarker(paths);
    expect(kafkaLibsComplete(paths)).toBe(true);
  });

  it('becomes incomplete when a jar disappears or the pom changes', () => {
    const paths = setup();
    writeFileSync(join(paths.libsDir, 'kafka_2.13-3.9.1.jar'), '');
    writeFileSync(join(paths.libsDir, 'kafka-clients-3.9.1.jar'), '');
    writeKafkaLibsMarker(paths);
    rmSync(join(paths.libsDir, 'kafka-clients-3.9.1.jar'));
    expect(kafkaLibsComplete(paths)).toBe(false);

    writeFileSync(join(paths.libsDir, 'kafka-clients-3.9.1.jar'), '');
    expect(kafkaLibsComplete(paths)).toBe(true);
    writeFileSync(paths.pom, '<project>v2</project>');
    expect(kafkaLibsComplete(paths)).toBe(false);
  });

  it('refuses to mark a copy without the broker jar', () => {
    const paths = setup();
    writeFileSync(join(paths.libsDir, 'slf4j-api-1.7.36.jar'), '');
    expect(() => writeKafkaLibsMarker(paths)).toThrow(/kafka_2\.13-3\.9\.1/);
  });
});

describe('command lines', () => {
  const paths = kafkaPaths('/repo');

  it('copies runtime jars from the project pom into the cache', () => {
    expect(mvnCopyArgs(paths)).toEqual([
      '-q',
      '-B',
      '-f',
      '/repo/stack/kafka/pom.xml',
      'dependency:copy-dependencies',
      '-DoutputDirectory=/repo/.cache/kafka/libs',
      '-DincludeScope=runtime',
    ]);
  });

  it('formats storage with StorageTool and the generated server.properties', () => {
    const args = storageFormatArgs(paths, 'abc');
    expect(args.slice(-5)).toEqual(['kafka.tools.StorageTool', 'format', '--cluster-id=abc', '-c', '/repo/.stack/kafka/server.properties']);
    expect(args).toContain('/repo/.cache/kafka/libs/*');
  });

  it('starts kafka.Kafka with a capped heap and our log4j config', () => {
    const args = brokerArgs(paths);
    expect(args.slice(-2)).toEqual([KAFKA_MAIN_CLASS, '/repo/.stack/kafka/server.properties']);
    expect(args).toContain('-Xmx768m');
    expect(args).toContain('-Dlog4j.configuration=file:/repo/.stack/kafka/log4j.properties');
  });

  it('keeps data, logs and pid under .stack/kafka', () => {
    expect(paths.dataDir).toBe('/repo/.stack/kafka/data');
    expect(paths.pidFile).toBe('/repo/.stack/kafka/pid');
    expect(paths.outFile).toBe('/repo/.stack/kafka/kafka.out');
  });

  it('knows storage is formatted once meta.properties exists', () => {
    const root = tempRoot();
    const p = kafkaPaths(root);
    expect(storageFormatted(p)).toBe(false);
    mkdirSync(p.dataDir, { recursive: true });
    writeFileSync(join(p.dataDir, 'meta.properties'), 'version=1\n');
    expect(storageFormatted(p)).toBe(true);
  });
});
