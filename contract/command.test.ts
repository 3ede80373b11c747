import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { CommandResultSchema, commandProblem, decodeCommandResult, MAX_RESULT_BYTES, PaymentCommandSchema } from './command.ts';

const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const id = 'K' + 'a'.repeat(24);

describe('command contract', () => {
  test.each([
    ['payment-command.v1.schema.json', PaymentCommandSchema],
    ['command-result.v1.schema.json', CommandResultSchema],
  ])('the committed %s is generated from the TypeScript source', (file, schema) => {
    expect(JSON.parse(readFileSync(new URL(`./${file}`, import.meta.url), 'utf8'))).toEqual(JSON.parse(JSON.stringify(schema)));
  });

  test('a result is decoded; extra fields are kept', () => {
    expect(decodeCommandResult(buf({ command_id: id, status: 'rejected', detail: 'IP already blocked', gateway: 'g1' }))).toEqual({
      ok: true,
      result: { command_id: id, status: 'rejected', detail: 'IP already blocked', gateway: 'g1' },
    });
  });

  test.each([
    ['empty', null, /empty/],
    ['not JSON', buf('{"command_id":'), /not JSON/],
    ['an unknown status', buf({ command_id: id, status: 'ok' }), /contract: \/status must be equal to one of the allowed values/],
    ['a made-up id', buf({ command_id: 'refund-1', status: 'done' }), /contract: \/command_id/],
    ['too large', buf({ command_id: id, status: 'done', detail: 'x'.repeat(MAX_RESULT_BYTES) }), /larger than/],
  ])('%s is not a result, with the reason', (_name, value, reason) => {
    const r = decodeCommandResult(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  test('a command must carry its id, type, times and reason, and nothing unknown', () => {
    const c = { command_id: id, type: 'block', case_id: 'C1', rule_id: 'r', entity_type: 'ip', entity_id: '10.0.0.1', ttl: 3600 };
    const times = { issued_at: '2026-11-25T10:00:00Z', expires_at: '2026-11-25T10:05:00Z', reason: 'card testing' };
    expect(commandProblem({ ...c, ...times })).toBeNull();
    expect(commandProblem({ ...c, ...times, type: 'ban' })).toMatch(/type/);
    expect(commandProblem({ ...c, ...times, issued_at: 'yesterday' })).toMatch(/issued_at/);
    expect(commandProblem({ ...c, ...times, password: 'x' })).toMatch(/additional/);
  });
});
