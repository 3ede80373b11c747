import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../config/index.ts';
import { classifyStatus, retryAfterMs, signWebhook, verifyWebhook } from './webhook.ts';

const secret = 'a-test-secret-of-32-characters!!';
const body = JSON.stringify({ case_id: 'C0123', version: 1732530000000, status: 'open' });
const now = Date.UTC(2026, 10, 25, 12, 0, 0);
const ts = String(Math.floor(now / 1000));

describe('webhook signature', () => {
  test('is sha256=<hex> of HMAC-SHA256 over "<timestamp>.<raw body>", as a receiver computes it by hand', () => {
    const expected = 'sha256=' + createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
    expect(signWebhook(secret, ts, body)).toBe(expected);
    expect(signWebhook(secret, Number(ts), Buffer.from(body))).toBe(expected);
  });

  test('verifies a genuine request', () => {
    expect(verifyWebhook({ secret, body, timestamp: ts, signature: signWebhook(secret, ts, body), nowMs: now })).toEqual({ ok: true });
  });

  test.each([
    { name: 'a changed body', patch: { body: body.replace('open', 'resolved') }, reason: /does not match/ },
    { name: 'another secret', patch: { secret: 'another-secret-of-32-characters!' }, reason: /does not match/ },
    { name: 'a re-dated timestamp with the old signature', patch: { timestamp: String(Number(ts) + 1) }, reason: /does not match/ },
    { name: 'a replay 10 minutes later', patch: { nowMs: now + 600_000 }, reason: /too old/ },
    { name: 'a timestamp from the future', patch: { nowMs: now - 600_000 }, reason: /too old or in the future/ },
    { name: 'no timestamp', patch: { timestamp: undefined }, reason: /timestamp/ },
    { name: 'no signature', patch: { signature: undefined }, reason: /missing signature/ },
    { name: 'a truncated signature', patch: { signature: signWebhook(secret, ts, body).slice(0, 20) }, reason: /does not match/ },
  ])('rejects $name', ({ patch, reason }) => {
    const input = { secret, body, timestamp: ts as string | undefined, signature: signWebhook(secret, ts, body) as string | undefined, nowMs: now, ...patch };
    const result = verifyWebhook(input);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(reason);
  });
});

describe('webhook answers', () => {
  test.each([
    [200, 'delivered'],
    [204, 'delivered'],
    [500, 'retry'],
    [502, 'retry'],
    [503, 'retry'],
    [429, 'retry'],
    [408, 'retry'],
    [400, 'rejected'],
    [401, 'rejected'],
    [404, 'rejected'],
    [410, 'rejected'],
    [301, 'rejected'],
  ] as const)('HTTP %i is %s', (status, kind) => {
    expect(classifyStatus(status)).toBe(kind);
  });

  test('Retry-After is read in seconds or as a date', () => {
    expect(retryAfterMs('7')).toBe(7000);
    expect(retryAfterMs(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
  });
});

describe('webhook settings', () => {
  test('off by default; a URL needs a secret, and a bad secret is reported without printing it', () => {
    expect(loadConfig({}).caseWebhookUrl).toBe('');
    expect(loadConfig({ CASE_WEBHOOK_URL: 'https://hooks.example.com/cases', CASE_WEBHOOK_SECRET: secret }).caseWebhookUrl).toBe(
      'https://hooks.example.com/cases',
    );
    expect(() => loadConfig({ CASE_WEBHOOK_URL: 'https://hooks.example.com/cases' })).toThrow(/CASE_WEBHOOK_SECRET is required when CASE_WEBHOOK_URL is set/);
    expect(() => loadConfig({ CASE_WEBHOOK_URL: 'ftp://hooks.example.com', CASE_WEBHOOK_SECRET: secret })).toThrow(
      /CASE_WEBHOOK_URL="ftp:\/\/hooks.example.com" is invalid: expected empty \(off\) or an http\(s\) URL/,
    );
    expect(() => loadConfig({ CASE_WEBHOOK_SECRET: 'short-s3cret' })).toThrow(/CASE_WEBHOOK_SECRET is too short/);
    expect(() => loadConfig({ CASE_WEBHOOK_SECRET: 'short-s3cret' })).not.toThrow(/short-s3cret/);
  });
});
