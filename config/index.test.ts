import { describe, expect, test } from 'vitest';
import { limitFor, loadConfig } from './index.ts';

describe('loadConfig', () => {
  test('defaults point at the local stack', () => {
    const config = loadConfig({});
    expect(config.kafkaBrokers).toEqual(['127.0.0.1:9092']);
    expect(config.clickhouseUrl).toBe('http://127.0.0.1:8123');
    expect(config.topicPartitions).toBe(6);
    expect(config.batchMaxRows).toBe(50_000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('reads overrides', () => {
    const config = loadConfig({ KAFKA_BROKERS: 'a:1, b:2', INGEST_BATCH_MAX_MS: '300' });
    expect(config.kafkaBrokers).toEqual(['a:1', 'b:2']);
    expect(config.batchMaxMs).toBe(300);
  });

  test('reports every bad value with what to fix', () => {
    expect(() => loadConfig({ KAFKA_TOPIC_PARTITIONS: 'six', CLICKHOUSE_URL: 'ftp://x', KAFKA_BROKERS: 'nohost' })).toThrow(
      new RegExp(
        [
          'KAFKA_BROKERS="nohost" is invalid: expected a comma-separated list of host:port',
          'KAFKA_TOPIC_PARTITIONS="six" is invalid: expected a whole number from 1 to 128',
          'CLICKHOUSE_URL="ftp://x"',
        ].join('[\\s\\S]*'),
      ),
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

  test('the rates job runs above the other jobs unless RATES_PRIORITY says otherwise', () => {
    expect(loadConfig({}).ratesPriority).toBe('above-jobs');
    expect(loadConfig({ RATES_PRIORITY: 'foreground' }).ratesPriority).toBe('foreground');
    expect(loadConfig({ RATES_PRIORITY: ' background ' }).ratesPriority).toBe('background');
    expect(() => loadConfig({ RATES_PRIORITY: 'low' })).toThrow(/RATES_PRIORITY="low" is invalid: expected foreground, above-jobs or background/);
  });

  test('the jobs spill at half the memory limit unless JOBS_SPILL_BYTES gives a number of bytes', () => {
    expect(loadConfig({}).jobsSpillBytes).toBe('auto');
    expect(loadConfig({ JOBS_SPILL_BYTES: '0' }).jobsSpillBytes).toBe(0);
    expect(loadConfig({ JOBS_SPILL_BYTES: ' 2000000000 ' }).jobsSpillBytes).toBe(2_000_000_000);
    expect(() => loadConfig({ JOBS_SPILL_BYTES: '1G' })).toThrow(/JOBS_SPILL_BYTES="1G" is invalid: expected auto or a whole number of bytes/);
    expect(() => loadConfig({ JOBS_SPILL_BYTES: 'Auto' })).toThrow(/expected auto or/);
  });

  test('automation: dry-run by default, refunds off, and refunds on only with both ceilings', () => {
    expect(loadConfig({})).toMatchObject({ automation: 'dry-run', automationRefunds: false, requeryAfterMs: 5 * 60_000, requeryMaxPerMinute: 60 });
    expect(() => loadConfig({ AUTOMATION: 'yes' })).toThrow(/AUTOMATION="yes" is invalid: expected off, dry-run or on/);
    expect(() => loadConfig({ AUTOMATION_REFUNDS: 'on' })).toThrow(/AUTOMATION_REFUNDS=on needs AUTO_REFUND_MAX_MINOR and AUTO_REFUND_DAILY_MINOR/);
    const c = loadConfig({ AUTOMATION_REFUNDS: 'on', AUTO_REFUND_MAX_MINOR: 'CNY:50000,USD:8000', AUTO_REFUND_DAILY_MINOR: '900000' });
    expect([limitFor(c.autoRefundMaxMinor, 'CNY'), limitFor(c.autoRefundMaxMinor, 'USD'), limitFor(c.autoRefundMaxMinor, 'EUR')]).toEqual([50_000, 8_000, 0]);
    expect(limitFor(c.autoRefundDailyMinor, 'EUR')).toBe(900_000);
    expect(() => loadConfig({ AUTO_REFUND_MAX_MINOR: 'cny:5' })).toThrow(/per currency \(e.g. CNY:50000,USD:8000\)/);
  });
});
