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
});
