import { describe, expect, test } from 'vitest';
import { loadConfig } from './index.ts';

describe('loadConfig', () => {
  test('defaults point at the local stack', () => {
    const config = loadConfig({});
    expect(config.kafkaBrokers).toEqual(['127.0.0.1:9092']);
    expect(config.clickhouseUrl).toBe('http://127.0.0.1:8123');
    expect(config.topicPartitions).toBe(6);
    expect(config.batchMaxRows).toBe(10_000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('reads overrides', () => {
    const config = loadConfig({ KAFKA_BROKERS: 'a:1, b:2', INGEST_BATCH_MAX_MS: '300' });
    expect(config.kafkaBrokers).toEqual(['a:1', 'b:2']);
    expect(config.batchMaxMs).toBe(300);
  });

  test('reports every bad value with what to fix', () => {
    expect(() => loadConfig({ KAFKA_TOPIC_PARTITIONS: 'six', CLICKHOUSE_URL: 'ftp://x', KAFKA_BROKERS: 'nohost' })).toThrow(
      /KAFKA_BROKERS="nohost" is invalid: expected a comma-separated list of host:port[\s\S]*KAFKA_TOPIC_PARTITIONS="six" is invalid: expected a whole number from 1 to 128[\s\S]*CLICKHOUSE_URL="ftp:\/\/x"/,
    );
  });

  test('refuses credentials inside the URL so secrets stay in their own variables', () => {
    expect(() => loadConfig({ CLICKHOUSE_URL: 'http://u:p@h:8123' })).toThrow(/CLICKHOUSE_PASSWORD/);
  });

  test('statement settings: a size in bytes and a grace as a duration', () => {
    expect(loadConfig({})).toMatchObject({ statementMaxBytes: 1024 ** 3, statementGraceMs: 30 * 60_000 });
    expect(loadConfig({ STATEMENT_GRACE: '2h', STATEMENT_MAX_BYTES: '1048576' })).toMatchObject({ statementGraceMs: 7_200_000, statementMaxBytes: 1_048_576 });
    expect(() => loadConfig({ STATEMENT_GRACE: '30' })).toThrow(/STATEMENT_GRACE="30" is invalid: expected a duration such as 30m/);
    expect(() => loadConfig({ STATEMENT_GRACE: '8d' })).toThrow(/at most 168 hours/);
  });
});
