import { createServer, type Server } from 'node:http';
import type { Registry } from './registry.ts';

export interface HealthCheck {
  ready: boolean;
  checks: Record<string, boolean | string>;
}

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz` (200 when ready, 503 otherwise,
 * with a JSON body saying which check fails).
 */
export async function startHttpServer(options: { host: string; port: number; registry: Registry; health: () => HealthCheck }): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(options.registry.render());
    } else if (path === '/healthz') {
      const health = options.health();
      res.writeHead(health.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(health) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}
