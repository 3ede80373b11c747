import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaseStore, type Case } from '../../cases/index.ts';
import { loadConfig } from '../../config/index.ts';
import { createConsoleApp } from '../../console/app.ts';
import { createCaseFeed } from '../../console/live.ts';
import { startConsole, type RunningConsole } from '../../console/server.ts';
import { createUserStore } from '../../console/users.ts';
import { validateEvent } from '../../contract/index.ts';
import { toEventRow } from '../../ingest/records.ts';
import { toDateTimeText } from '../../storage/sql.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow, type Hit } from '../../rules/index.ts';
import { insertRows, queryRows } from '../../storage/clickhouse.ts';
import { ident, sql } from '../../storage/sql.ts';
import { readTopic, repoRoot, services } from './helpers.ts';

const casesTopic = `t${Math.random().toString(36).slice(2, 10)}.payments.cases`;
const usersFile = join(mkdtempSync(join(tmpdir(), 'ps-console-')), 'users.json');
const s = services({
  KAFKA_CASES_TOPIC: casesTopic,
  CONSOLE_USERS_FILE: usersFile,
  CONSOLE_PORT: '0',
  CONSOLE_SESSION_SECRET: 'x'.repeat(40),
  CONSOLE_LOGIN_ATTEMPTS: '50',
});
const db = s.config.clickhouseDatabase;
const users = createUserStore(usersFile);
let running: RunningConsole;
let base: string;
let supportToken: string;
let viewerToken: string;
let riskToken: string;

const HOSTILE_ORDER = '"><script>document.title="pwned"</script>';
const HOSTILE_DEVICE = '<img src=x onerror=alert(1)>';
const LATE_ORDER = 'order-late-1';
// Ten minutes ago: case pages show the entity's events of the last 24 hours.
const t0 = Math.floor(Date.now() / 1000) * 1000 - 600_000;

const event = (i: number, patch: Record<string, unknown>) => {
  const checked = validateEvent({
    event_id: `console-${i}`,
    occurred_at: new Date(t0 + i * 1000).toISOString(),
    type: 'payment',
    status: 'processing',
    order_id: LATE_ORDER,
    attempt: 1,
    transaction_id: 'tx-late-1',
    amount_minor: 1250,
    currency: 'CNY',
    channel: 'alipay',
    merchant_id: 'm-1',
    user_id: 'u-1',
    device_id: 'd-1',
    ip: '203.0.113.7',
    source: 'client',
    ...patch,
  });
  if (!checked.ok) throw new Error(checked.reason);
  return toEventRow(checked.value, 0, i, toDateTimeText(t0 + 200_000));
};

const hit = (entityType: Hit['entityType'], entityId: string, ruleId = 'charged_but_failed', severity: Hit['severity'] = 'high'): Hit => ({
  ruleId,
  ruleVersion: 'v1',
  title: `Check ${entityType}`,
  severity,
  action: 'notify_support',
  entityType,
  entityId,
  cooldownMs: 600_000,
  recommendedAction: `Look at ${entityId}.`,
  evidence: { ip_attempts_10m: 31 },
});

/** A browser-like client: keeps the session cookie and reads the CSRF token from pages. */
function client() {
  let cookie = '';
  return {
    get cookie() {
      return cookie;
    },
    async fetch(path: string, init: RequestInit = {}) {
      const res = await fetch(base + path, {
        ...init,
        redirect: 'manual',
        headers: { ...(cookie ? { cookie } : {}), ...(init.headers as Record<string, string>) },
      });
      const set = res.headers.getSetCookie().find((c) => c.startsWith('paysentinel_session='));
      if (set) cookie = set.split(';')[0]!;
      return res;
    },
    async csrf(path = '/login') {
      const html = await (await this.fetch(path)).text();
      return /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    },
    async login(name: string, password: string, next = '/') {
      const token = await this.csrf();
      return this.fetch('/login', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: token, name, password, next }).toString(),
      });
    },
  };
}

const api = (path: string, token: string, init: RequestInit = {}) =>
  fetch(base + path, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...(init.headers as Record<string, string>) },
  });

let orderCase: Case;
let deviceCase: Case;
let hostileCase: Case;

beforeAll(async () => {
  await users.add('sam', 'support', 'sam-password-1');
  await users.add('vic', 'viewer', 'vic-password-1');
  await users.add('rita', 'risk', 'rita-password-1');
  riskToken = users.createToken('rita');
  supportToken = users.createToken('sam');
  viewerToken = users.createToken('vic');
  running = await startConsole(s.config, silentLogger);
  base = running.url;
  // The late callback: processing from the client, then the gateway's success 90 s later, then a status query.
  await insertRows(s.clickhouse, ident(db, 'payment_events').text, [
    event(0, {}),
    event(90, { status: 'succeeded', source: 'gateway_callback' }),
    event(95, { status: 'succeeded', source: 'status_query' }),
    event(5, { order_id: HOSTILE_ORDER, transaction_id: 'tx-hostile', device_id: HOSTILE_DEVICE, status: 'failed', failure_code: 'network_error' }),
  ]);
  const producer = s.kafka.producer();
  await producer.connect();
  const store = createCaseStore({ clickhouse: s.clickhouse, database: db, producer, topic: casesTopic });
  const now = Date.now();
  orderCase = (await store.applyHits([hit('order', LATE_ORDER)], now - 60_000)).opened[0]!;
  deviceCase = (await store.applyHits([hit('device', HOSTILE_DEVICE, 'device_failure_spike', 'medium')], now - 30_000)).opened[0]!;
  hostileCase = (await store.applyHits([hit('order', HOSTILE_ORDER, 'duplicate_charge', 'critical')], now - 10_000)).opened[0]!;
  await producer.disconnect();
});

afterAll(async () => {
  await running?.stop();
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [casesTopic] }).catch(() => {});
  await admin.disconnect();
  await s.cleanup();
});

describe('the support console on the real ClickHouse and Kafka', () => {
  test('no page or API route answers without authentication: 401, pages with the login form', async () => {
    for (const path of [
      '/',
      '/events',
      `/cases/${orderCase.case_id}`,
      `/orders/${LATE_ORDER}`,
      '/api/v1/cases',
      `/api/v1/cases/${orderCase.case_id}`,
      `/api/v1/orders/${LATE_ORDER}`,
    ]) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(401);
      const text = await res.text();
      if (path.startsWith('/api/')) expect(JSON.parse(text), path).toEqual({ error: { code: 'unauthenticated', message: expect.any(String) } });
      else expect(text, path).toContain('action="/login"');
      expect(text, path).not.toContain('Look at');
      expect(text, path).not.toContain('tx-late-1');
    }
    const post = await fetch(`${base}/api/v1/cases/${orderCase.case_id}/acknowledge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(post.status).toBe(401);
    expect((await api('/api/v1/cases', 'pst_000000000000_nottherealtoken')).status).toBe(401);
  });

  test(
    'login sets an HttpOnly SameSite session cookie; the inbox lists the cases most severe first with counts per status; ' +
      'a strict CSP without inline script',
    async () => {
      const browser = client();
      expect((await browser.login('sam', 'wrong-password')).status).toBe(401);
      const res = await browser.login('sam', 'sam-password-1');
      expect(res.status).toBe(303);
      const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('paysentinel_session='))!;
      expect(setCookie).toMatch(/HttpOnly/i);
      expect(setCookie).toMatch(/SameSite=Strict/i);
      // After a login the browser goes back to the page it asked for, but never off the console.
      expect((await client().login('sam', 'sam-password-1', `/cases/${orderCase.case_id}`)).headers.get('location')).toBe(`/cases/${orderCase.case_id}`);
      for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example']) {
        expect((await client().login('sam', 'sam-password-1', next)).headers.get('location'), next).toBe('/');
      }
      const inbox = await browser.fetch('/');
      expect(inbox.status).toBe(200);
      const csp = inbox.headers.get('content-security-policy')!;
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      const html = await inbox.text();
      expect(html).toContain('open: <strong>3</strong>');
      // critical, then high, then medium
      const positions = [HOSTILE_ORDER, LATE_ORDER, HOSTILE_DEVICE].map((id) => html.indexOf(escapeHtml(id)));
      expect(positions.every((i) => i > 0)).toBe(true);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    },
  );

  test('ids made of markup appear as text on every page, never as markup', async () => {
    const browser = client();
    await browser.login('vic', 'vic-password-1');
    const pages = [
      await (await browser.fetch('/')).text(),
      await (await browser.fetch(`/cases/${deviceCase.case_id}`)).text(),
      await (await browser.fetch(`/orders/${encodeURIComponent(HOSTILE_ORDER)}`)).text(),
      await (await browser.fetch(`/cases/${hostileCase.case_id}`)).text(),
    ];
    for (const html of pages) {
      expect(html).not.toContain('<script>document.title');
      expect(html).not.toContain('<img src=x');
    }
    expect(pages[1]).toContain(escapeHtml(HOSTILE_DEVICE));
    // The device's timeline links its order by a percent-encoded path and shows the id as text.
    expect(pages[1]).toContain(`<a href="/orders/${escapeHtml(encodeURIComponent(HOSTILE_ORDER))}">${escapeHtml(HOSTILE_ORDER)}</a>`);
    expect(pages[1]).toContain('network_error');
    // Evidence rows are labelled with the feature catalog's description.
    expect(pages[1]).toContain('Payment attempts (distinct order_id + attempt) from the IP in the last 10 minutes.');
    expect(pages[2]).toContain(escapeHtml(HOSTILE_ORDER));
    // The customer message quotes the order id as text inside the text area.
    expect(pages[3]).toMatch(new RegExp(`<textarea id="customer-message"[^>]*>[^<]*${escapeRegExp(escapeHtml(HOSTILE_ORDER))}`));
    // Links to a hostile id are paths on this console, its characters percent-encoded.
    expect(pages[0]).toContain(`href="/orders/${escapeHtml(encodeURIComponent(HOSTILE_ORDER))}"`);
  });

  test(
    'the API: filters, keyset paging, a case with its history; support assigns, acknowledges and resolves; ' +
      'each change is stored and published with who and the note',
    async () => {
      const all = await (await api('/api/v1/cases?limit=2', supportToken)).json();
      expect(all.cases.map((c: Case) => c.entity_id)).toEqual([HOSTILE_ORDER, LATE_ORDER]);
      const rest = await (await api(`/api/v1/cases?limit=2&cursor=${all.next_cursor}`, supportToken)).json();
      expect(rest).toEqual({ cases: [expect.objectContaining({ entity_id: HOSTILE_DEVICE })], next_cursor: null });
      expect((await (await api(`/api/v1/cases?entity_type=order&severity=high`, supportToken)).json()).cases.map((c: Case) => c.case_id)).toEqual([
        orderCase.case_id,
      ]);
      expect((await (await api(`/api/v1/cases?q=${encodeURIComponent(HOSTILE_DEVICE)}`, supportToken)).json()).cases.map((c: Case) => c.case_id)).toEqual([
        deviceCase.case_id,
      ]);

      const id = orderCase.case_id;
      const assigned = await api(`/api/v1/cases/${id}/assign`, supportToken, { method: 'POST', body: JSON.stringify({ note: 'mine' }) });
      expect(assigned.status).toBe(200);
      expect(await assigned.json()).toMatchObject({ case_id: id, assignee: 'sam', status: 'open' });
      expect(
        (await api(`/api/v1/cases/${id}/acknowledge`, supportToken, { method: 'POST', body: JSON.stringify({ note: 'calling the customer' }) })).status,
      ).toBe(200);
      const noResolution = await api(`/api/v1/cases/${id}/resolve`, supportToken, { method: 'POST', body: JSON.stringify({ note: 'done' }) });
      expect(noResolution.status).toBe(400);
      expect((await noResolution.json()).error.message).toMatch(/resolution/);
      const badResolution = await api(`/api/v1/cases/${id}/resolve`, supportToken, { method: 'POST', body: JSON.stringify({ resolution: 'shrug' }) });
      expect(badResolution.status).toBe(400);
      expect((await badResolution.json()).error).toMatchObject({
        code: 'invalid_request',
        message: expect.stringMatching(/^body\.resolution: must be equal to one of the allowed values/),
      });
      const unknownField = await api(`/api/v1/cases/${id}/resolve`, supportToken, {
        method: 'POST',
        body: JSON.stringify({ resolution: 'refunded', notes: 'typo' }),
      });
      expect((await unknownField.json()).error.message).toBe('body.notes is not a field this request takes.');
      const resolved = await api(`/api/v1/cases/${id}/resolve`, supportToken, {
        method: 'POST',
        body: JSON.stringify({ note: 'told the customer the payment went through', resolution: 'customer_contacted' }),
      });
      expect(resolved.status).toBe(200);
      expect(await resolved.json()).toMatchObject({ status: 'resolved', resolution: 'customer_contacted', assignee: 'sam' });
      const again = await api(`/api/v1/cases/${id}/resolve`, supportToken, { method: 'POST', body: JSON.stringify({ resolution: 'false_positive' }) });
      expect(again.status).toBe(409);
      expect((await again.json()).error.code).toBe('conflict');

      const detail = await (await api(`/api/v1/cases/${id}`, supportToken)).json();
      // The customer message: the success first reported by the gateway callback 90 s after the start.
      const paidAt = new Date(t0 + 90_000).toISOString().slice(0, 16).replace('T', ' ');
      expect(detail.customer_message).toContain(`About your order ${LATE_ORDER}: your payment of 12.50 CNY by alipay went through at ${paidAt} UTC`);
      expect(detail.customer_message).toContain('(transaction tx-late-1)');
      expect((await (await api(`/api/v1/cases/${deviceCase.case_id}`, supportToken)).json()).customer_message).toBeNull();
      expect(detail.history.map((h: { changed_by: string; status: string; note: string }) => [h.changed_by, h.status, h.note])).toEqual([
        ['detector', 'open', ''],
        ['sam', 'open', 'mine'],
        ['sam', 'acknowledged', 'calling the customer'],
        ['sam', 'resolved', 'told the customer the payment went through'],
      ]);
      const stored = await queryRows<{ status: string; resolution: string; assignee: string }>(
        s.clickhouse,
        sql`SELECT status, resolution, assignee FROM ${ident(db, 'cases')} WHERE case_id = ${id}`,
      );
      expect(stored).toEqual([{ status: 'resolved', resolution: 'customer_contacted', assignee: 'sam' }]);
      const published = (await readTopic(s.kafka, casesTopic, 6)).filter((m) => m.key === id).map((m) => JSON.parse(m.value));
      expect(published.at(-1)).toMatchObject({
        case_id: id,
        status: 'resolved',
        resolution: 'customer_contacted',
        changed_by: 'sam',
        note: 'told the customer the payment went through',
      });
    },
  );

  test('related cases: cases of the IPs, devices and users seen with the entity in the rule window; the inbox filters by age', async () => {
    // The hostile order was paid from the hostile device, which has a case of its own.
    const detail = await (await api(`/api/v1/cases/${hostileCase.case_id}`, viewerToken)).json();
    expect(detail.related_entities.map((r: Case & { shared: string }) => [r.case_id, r.shared])).toEqual([[deviceCase.case_id, `device ${HOSTILE_DEVICE}`]]);
    expect(detail.related_window_ms).toBe(86_400_000);
    // The late order shares its IP and user with the hostile order, but no IP, device or user case exists for them.
    expect((await (await api(`/api/v1/cases/${orderCase.case_id}`, viewerToken)).json()).related_entities).toEqual([]);
    const browser = client();
    await browser.login('vic', 'vic-password-1');
    const page = await (await browser.fetch(`/cases/${hostileCase.case_id}`)).text();
    expect(page).toContain(`<span class="shared">device ${escapeHtml(HOSTILE_DEVICE)}</span>: <a href="/cases/${deviceCase.case_id}">`);

    const ids = async (query: string) => (await (await api(`/api/v1/cases?${query}`, viewerToken)).json()).cases.map((c: Case) => c.case_id).sort();
    const all = [orderCase.case_id, deviceCase.case_id, hostileCase.case_id].sort();
    expect(await ids('max_age=1h')).toEqual(all);
    expect(await ids('min_age=1h')).toEqual([]);
    expect(await ids('min_age=1h&max_age=7d')).toEqual([]);
    const bad = await api('/api/v1/cases?max_age=soon', viewerToken);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/^querystring\.max_age/);
    const inbox = await (await browser.fetch('/?min_age=24h')).text();
    expect(inbox).toContain('No cases match.');
    expect(inbox).toContain('<option value="24h" selected>24h</option>');
  });

  test('errors: 404 for an unknown case or order, 413 over 16 KiB, 400 naming a bad field; a viewer reads but gets 403 on every change', async () => {
    expect((await api('/api/v1/cases/Cnope', supportToken)).status).toBe(404);
    const order = await api('/api/v1/orders/no-such-order', supportToken);
    expect(order.status).toBe(404);
    expect(await order.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    const big = await api(`/api/v1/cases/${deviceCase.case_id}/acknowledge`, supportToken, {
      method: 'POST',
      body: JSON.stringify({ note: 'x'.repeat(17 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('too_large');
    const limit = await api('/api/v1/cases?limit=9999', supportToken);
    expect(limit.status).toBe(400);
    expect((await limit.json()).error.message).toMatch(/limit/);
    expect((await api('/api/v1/cases?cursor=garbage', supportToken)).status).toBe(400);
    expect((await api(`/api/v1/cases/${'x'.repeat(129)}`, supportToken)).status).toBe(400);
    expect((await api(`/api/v1/orders/${encodeURIComponent('订单😀'.repeat(32))}`, supportToken)).status).toBe(404);

    expect((await api(`/api/v1/cases/${deviceCase.case_id}`, viewerToken)).status).toBe(200);
    for (const action of ['assign', 'acknowledge', 'resolve']) {
      const res = await api(`/api/v1/cases/${deviceCase.case_id}/${action}`, viewerToken, {
        method: 'POST',
        body: JSON.stringify({ resolution: 'false_positive' }),
      });
      expect(res.status, action).toBe(403);
    }
    const browser = client();
    await browser.login('vic', 'vic-password-1');
    const page = await (await browser.fetch(`/cases/${deviceCase.case_id}`)).text();
    expect(page).not.toContain('Acknowledge');
    expect((await api(`/api/v1/cases/${deviceCase.case_id}`, supportToken).then((r) => r.json())).status).toBe('open');
  });

  test('a browser session needs the CSRF token for every change; with it, the form acts and returns to the case; logging out ends the session', async () => {
    const browser = client();
    await browser.login('sam', 'sam-password-1');
    const path = `/cases/${deviceCase.case_id}/acknowledge`;
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect((await browser.fetch(path, { method: 'POST', headers: form, body: 'note=no+token' })).status).toBe(403);
    expect((await browser.fetch(`/api/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(403);
    const token = await browser.csrf(`/cases/${deviceCase.case_id}`);
    const res = await browser.fetch(path, { method: 'POST', headers: form, body: new URLSearchParams({ _csrf: token, note: 'on it' }).toString() });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/cases/${deviceCase.case_id}`);
    const page = await (await browser.fetch(`/cases/${deviceCase.case_id}`)).text();
    expect(page).toContain('<dd class="status">acknowledged</dd>');
    expect(page).toContain('on it');

    const logoutToken = await browser.csrf('/');
    expect((await browser.fetch('/logout', { method: 'POST', headers: form, body: new URLSearchParams({ _csrf: logoutToken }).toString() })).status).toBe(303);
    expect((await browser.fetch('/')).status).toBe(401);
  });

  test(
    "an order's story: every report of every attempt in time order with its source, the callback delay, its cases; " + 'found by transaction id too',
    async () => {
      const story = await (await api(`/api/v1/orders/${LATE_ORDER}`, viewerToken)).json();
      expect(story.order_id).toBe(LATE_ORDER);
      expect(story.attempts).toHaveLength(1);
      expect(story.attempts[0].reports.map((r: { status: string; source: string }) => `${r.status}/${r.source}`)).toEqual([
        'processing/client',
        'succeeded/gateway_callback',
        'succeeded/status_query',
      ]);
      expect(story.attempts[0]).toMatchObject({ outcome: 'succeeded', callback_delay_ms: 90_000 });
      expect(story.cases.map((c: Case) => c.case_id)).toEqual([orderCase.case_id]);
      expect((await (await api('/api/v1/orders/tx-late-1', viewerToken)).json()).order_id).toBe(LATE_ORDER);
      const cli = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'orders', 'show', 'tx-late-1'], {
        cwd: repoRoot,
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(cli.status, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/^Order order-late-1\n\nAttempt 1: succeeded \(callback after 90\.0 s\)\n/);
      expect(cli.stdout).toMatch(/\n.*processing +client[^\n]*\n.*succeeded +gateway_callback[^\n]*\n.*succeeded +status_query/);
      expect(cli.stdout).toContain(orderCase.case_id);
      const cliJson = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'orders', 'show', LATE_ORDER, '--json'], {
        cwd: repoRoot,
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(JSON.parse(cliJson.stdout)).toEqual(story);

      const browser = client();
      await browser.login('vic', 'vic-password-1');
      const html = await (await browser.fetch(`/orders/${LATE_ORDER}`)).text();
      expect(html.indexOf('gateway_callback')).toBeGreaterThan(html.indexOf('>client<'));
      expect(html).toContain('callback after 90.0 s');
    },
  );

  test('a session ends CONSOLE_SESSION_MINUTES after the login', async () => {
    let clock = Date.now();
    const app = await createConsoleApp({
      users,
      cases: createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: casesTopic }),
      clickhouse: s.clickhouse,
      database: db,
      factDescriptions: new Map(),
      sessionSecret: 'y'.repeat(40),
      sessionMinutes: 30,
      loginAttemptsPerMinute: 10,
      logger: silentLogger,
      feed: createCaseFeed({ clickhouse: s.clickhouse, database: db, intervalMs: 1000, logger: silentLogger }),
      now: () => clock,
    });
    const login = await app.inject({ method: 'GET', url: '/login' });
    const first = login.cookies.find((c) => c.name === 'paysentinel_session')!.value;
    const csrf = /name="_csrf" value="([^"]+)"/.exec(login.body)![1]!;
    const res = await app.inject({
      method: 'POST',
      url: '/login',
      cookies: { paysentinel_session: first },
      payload: { _csrf: csrf, name: 'sam', password: 'sam-password-1' },
    });
    expect(res.statusCode).toBe(303);
    const session = res.cookies.find((c) => c.name === 'paysentinel_session')!.value;
    expect((await app.inject({ method: 'GET', url: '/api/v1/cases?limit=1', cookies: { paysentinel_session: session } })).statusCode).toBe(200);
    clock += 31 * 60_000;
    expect((await app.inject({ method: 'GET', url: '/api/v1/cases?limit=1', cookies: { paysentinel_session: session } })).statusCode).toBe(401);
    await app.close();
  });

  test('paysentinel console refuses to start without CONSOLE_SESSION_SECRET, and otherwise serves until SIGTERM', async () => {
    const env = { ...process.env, ...s.env };
    const refused = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'console'], {
      cwd: repoRoot,
      env: { ...env, CONSOLE_SESSION_SECRET: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/CONSOLE_SESSION_SECRET is required by the console/);

    const child = spawn(process.execPath, ['bin/paysentinel.mjs', 'console'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await expect.poll(() => /Support console at (http:\/\/\S+)/.exec(out)?.[1], { timeout: 60_000 }).toBeDefined();
    const url = /Support console at (http:\/\/\S+)/.exec(out)![1]!;
    expect((await fetch(`${url}/login`)).status).toBe(200);
    expect((await fetch(`${url}/api/v1/cases`)).status).toBe(401);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  test('paysentinel cases resolve --resolution records the resolution the console shows', async () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['bin/paysentinel.mjs', 'cases', ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
        timeout: 60_000,
      });
    expect(run(['resolve', deviceCase.case_id, '--note', 'x', '--resolution', 'maybe']).stderr).toMatch(/--resolution must be one of confirmed_fraud/);
    const done = run(['resolve', deviceCase.case_id, '--note', 'card blocked by the bank', '--resolution', 'confirmed_fraud', '--by', 'cli-user']);
    expect(done.status, done.stderr).toBe(0);
    const detail = await (await api(`/api/v1/cases/${deviceCase.case_id}`, viewerToken)).json();
    expect(detail).toMatchObject({ status: 'resolved', resolution: 'confirmed_fraud' });
    expect(detail.history.at(-1)).toMatchObject({ changed_by: 'cli-user', resolution: 'confirmed_fraud', note: 'card blocked by the bank' });

    // cases show prints the same customer message as the console, in text and in JSON.
    const fromApi = (await (await api(`/api/v1/cases/${orderCase.case_id}`, viewerToken)).json()).customer_message;
    expect(fromApi).toMatch(/12\.50 CNY/);
    const shown = run(['show', orderCase.case_id]);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      `Customer message:\n${fromApi
        .split('\n')
        .map((l: string) => `  ${l}`.trimEnd())
        .join('\n')}`,
    );
    expect(JSON.parse(run(['show', orderCase.case_id, '--json']).stdout).customer_message).toBe(fromApi);
  });

  test("the rules page: every rule with its version, action and cases, and its precision from support's resolutions; conditions for risk only", async () => {
    // By now support resolved the late order's case as customer_contacted and the device's as confirmed_fraud.
    const fp = await api(`/api/v1/cases/${hostileCase.case_id}/resolve`, supportToken, {
      method: 'POST',
      body: JSON.stringify({ resolution: 'false_positive', note: 'one charge only' }),
    });
    expect(fp.status).toBe(200);
    const { rules } = await (await api('/api/v1/rules', viewerToken)).json();
    expect(rules.map((r: { id: string }) => r.id)).toEqual((await loadRuleSetOrThrow()).rules.map((r) => r.id));
    expect(rules.map((r: { id: string }) => r.id)).toEqual(expect.arrayContaining(['charged_but_failed', 'duplicate_charge', 'retry_storm']));
    const byId = Object.fromEntries(rules.map((r: { id: string }) => [r.id, r]));
    expect(byId.charged_but_failed).toMatchObject({
      enabled: true,
      action: 'notify_support',
      version: expect.stringMatching(/^[0-9a-f]{12}$/),
      cases_24h: 1,
      cases_7d: 1,
      real_cases: 1,
      false_positives: 0,
      rule_precision: 1,
    });
    expect(byId.duplicate_charge).toMatchObject({ cases_24h: 1, real_cases: 0, false_positives: 1, rule_precision: 0 });
    expect(byId.device_failure_spike).toMatchObject({ real_cases: 1, rule_precision: 1 });
    expect(byId.retry_storm).toMatchObject({ cases_7d: 0, rule_precision: null });
    expect(byId.charged_but_failed.conditions).toBeUndefined();
    const risk = await (await api('/api/v1/rules', riskToken)).json();
    const charged = risk.rules.find((r: { id: string }) => r.id === 'charged_but_failed');
    expect(charged.conditions).toEqual({ all: [expect.objectContaining({ fact: 'order_failed_then_succeeded_24h' })] });
    expect(charged.customer_message).toContain('{amount} {currency}');

    const browser = client();
    await browser.login('vic', 'vic-password-1');
    const html = await (await browser.fetch('/rules')).text();
    expect(html).toMatch(/<tr data-rule="duplicate_charge">[\s\S]*?<td class="precision">0%<\/td>/);
    expect(html).toMatch(/<tr data-rule="charged_but_failed">[\s\S]*?<td class="precision">100%<\/td>/);
    expect(html).toMatch(/<tr data-rule="retry_storm">[\s\S]*?<td class="precision">no verdicts yet<\/td>/);
    expect(html).not.toContain('Conditions and messages');
    expect((await fetch(`${base}/rules`)).status).toBe(401);
  });

  test('login attempts are rate-limited per client', async () => {
    const limited = await startConsole(loadConfig({ ...process.env, ...s.env, CONSOLE_LOGIN_ATTEMPTS: '3' }), silentLogger);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push(
          (
            await fetch(`${limited.url}/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body: 'name=sam&password=guess',
            })
          ).status,
        );
      expect(statuses.slice(3)).toEqual([429, 429]);
    } finally {
      await limited.stop();
    }
  });

  // Last: it adds a case, which the counts asserted above do not include.
  test('the inbox holds what needs a person: a case automation is handling shows only when asked for', async () => {
    const producer = s.kafka.producer();
    await producer.connect();
    const store = createCaseStore({ clickhouse: s.clickhouse, database: db, producer, topic: casesTopic });
    const now = Date.now();
    const handled = (await store.applyHits([hit('order', 'ORD-HANDLED-BY-AUTOMATION', 'stuck_processing', 'critical')], now - 5_000)).opened[0]!;
    await store.record({ ...handled, assignee: 'automation' }, 'automation', 'requery_status sent', now - 4_000);
    await producer.disconnect();
    const browser = client();
    await browser.login('sam', 'sam-password-1');
    const byDefault = await (await browser.fetch('/')).text();
    expect(byDefault).not.toContain('ORD-HANDLED-BY-AUTOMATION');
    expect(byDefault).toContain(escapeHtml(LATE_ORDER));
    for (const asked of ['any', 'automation']) {
      const html = await (await browser.fetch(`/?assignee=${asked}`)).text();
      expect(html, asked).toContain('ORD-HANDLED-BY-AUTOMATION');
    }
    expect(await (await browser.fetch('/?assignee=automation')).text()).not.toContain(escapeHtml(LATE_ORDER));
  });
});

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}
