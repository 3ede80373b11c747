import { createServer, type Server } from 'node:http';
import type { Registry } from './registry.ts';

export interface HealthCheck {
  ready: boolean;
  checks: Record<string, boolean | string>;
  /**
   * Parts that run but keep failing, each with its reason (e.g. ingest retrying a batch). They
   * show in the body as `status: "degraded"` and do not turn the answer into a 503: a restart
   * cannot mend them, so a probe that restarts on 503 must not see them.
   */
  degraded?: Record<string, unknown>;
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
      void options.registry.render().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
    } else if (path === '/healthz') {
      const health = options.health();
      const status = !health.ready ? 'unavailable' : Object.keys(health.degraded ?? {}).length ? 'degraded' : 'ok';
      res.writeHead(health.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status, ...health }) + '\n');
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
