/**
 * Error hierarchy shared by every stage. Each error has a stable `code` and says whether a
 * retry can help (`retriable`), so the retry helper never retries programmer errors.
 */
export const errorCodes = [
  'CONFIG_INVALID',
  'CLICKHOUSE_UNAVAILABLE',
  'CLICKHOUSE_QUERY_FAILED',
  'KAFKA_UNAVAILABLE',
  'STACK_FAILED',
  'RULES_INVALID',
  'USERS_INVALID',
  'USAGE',
  'STATEMENT_REFUSED',
  'TABLE_CHANGED',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export class PaysentinelError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PaysentinelError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

export interface RetryOptions {
  /** @default 5 */
  retries?: number;
  /** First delay in ms. @default 200 */
  initialDelayMs?: number;
  /** Upper bound for one delay in ms. @default 10000 */
  maxDelayMs?: number;
  /** Decides whether an error is worth retrying. @default errors with `retriable: true` */
  isRetriable?: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log or to heartbeat. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Stops retrying early (shutdown). */
  signal?: AbortSignal;
}

export const isRetriable = (err: unknown): boolean => (err instanceof PaysentinelError ? err.retriable : false);

/** Full-jitter exponential backoff delay for the given attempt (0-based). */
export function backoffDelay(attempt: number, initialDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Resolves after `ms`, or early (rejecting) when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `fn`, retrying retriable failures with exponential backoff and jitter. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { retries = 5, initialDelayMs = 200, maxDelayMs = 10_000, onRetry, signal } = options;
  const retriable = options.isRetriable ?? isRetriable;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= retries || !retriable(err) || signal?.aborted) throw err;
      const wait = backoffDelay(attempt, initialDelayMs, maxDelayMs);
      onRetry?.(err, attempt + 1, wait);
      await delay(wait, signal);
    }
  }
}
