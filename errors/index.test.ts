import { describe, expect, test } from 'vitest';
import { PaysentinelError, backoffDelay, retry } from './index.ts';

describe('retry', () => {
  test('retries retriable errors until success', async () => {
    let calls = 0;
    const result = await retry(
      async () => {
        calls++;
        if (calls < 3) throw new PaysentinelError('CLICKHOUSE_UNAVAILABLE', 'down', { retriable: true });
        return 'stored';
      },
      { initialDelayMs: 1, maxDelayMs: 2 },
    );
    expect(result).toBe('stored');
    expect(calls).toBe(3);
  });

  test('never retries a programmer error', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new TypeError('bug');
        },
        { initialDelayMs: 1 },
      ),
    ).rejects.toThrow('bug');
    expect(calls).toBe(1);
  });

  test('gives up after the configured retries and keeps the cause', async () => {
    const cause = new Error('socket hang up');
    await expect(
      retry(
        async () => {
          throw new PaysentinelError('CLICKHOUSE_UNAVAILABLE', 'down', { retriable: true, cause });
        },
        { retries: 2, initialDelayMs: 1 },
      ),
    ).rejects.toMatchObject({ code: 'CLICKHOUSE_UNAVAILABLE', cause });
  });

  test('backoff grows and stays under the cap', () => {
    expect(backoffDelay(0, 100, 1000, () => 1)).toBe(100);
    expect(backoffDelay(3, 100, 1000, () => 1)).toBe(800);
    expect(backoffDelay(10, 100, 1000, () => 1)).toBe(1000);
    expect(backoffDelay(10, 100, 1000, () => 0)).toBe(500);
  });
});
