import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createClickHouseHttp } from './http.ts';
import { ident } from './sql.ts';

// A server that takes requests and never answers: what a hung ClickHouse looks like to a client.
let server: Server;
let url = '';
beforeAll(async () => {
  server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const config = () => ({ clickhouseUrl: url, clickhouseUser: 'default', clickhousePassword: '' });

describe('a request to a server that does not answer', () => {
  test('is given up after the timeout', async () => {
    const http = createClickHouseHttp(config(), { timeoutMs: 200 });
    const started = Date.now();
    await expect(http.insertLines(ident('db', 't'), ['{}'], 'insert')).rejects.toThrow(/insert/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test("is aborted by the caller's signal long before a long timeout (a shutdown's deadline)", async () => {
    const stop = new AbortController();
    const http = createClickHouseHttp(config(), { timeoutMs: 600_000, signal: stop.signal });
    const started = Date.now();
    const pending = http.insertLines(ident('db', 't'), ['{}'], 'insert');
    setTimeout(() => stop.abort(new Error('shutdown deadline reached')), 100);
    await expect(pending).rejects.toThrow(/insert/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
