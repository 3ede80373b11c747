import { expect, test } from 'vitest';
import { PaysentinelError } from '../errors/index.ts';
import { classifyClickHouseError, writeFailureKind } from './clickhouse.ts';

/** A server answer as storage/http.ts wraps it: ClickHouse's text, its code and the HTTP status. */
const answer = (text: string, code: string | undefined, status: number) => classifyClickHouseError(Object.assign(new Error(text), { code, status }), 'insert');

test.each([
  {
    name: 'connection refused',
    err: classifyClickHouseError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'x'),
    kind: 'unavailable',
  },
  { name: 'socket hang up', err: classifyClickHouseError(new Error('socket hang up'), 'x'), kind: 'unavailable' },
  { name: 'too many parts', err: answer('Code: 252, Too many parts', '252', 500), kind: 'unavailable' },
  { name: 'memory limit', err: answer('Code: 241, Memory limit exceeded', '241', 500), kind: 'unavailable' },
  { name: 'unknown table', err: answer("Code: 60, Table ps.payment_events doesn't exist", '60', 404), kind: 'environment' },
  { name: 'unknown database', err: answer('Code: 81, Database ps does not exist', '81', 404), kind: 'environment' },
  { name: 'wrong password', err: answer('Code: 193, Wrong password for user default', '193', 500), kind: 'environment' },
  { name: 'read-only user', err: answer('Code: 164, Cannot execute query in readonly mode', '164', 500), kind: 'environment' },
  { name: 'access denied', err: answer('Code: 497, Not enough privileges', '497', 403), kind: 'environment' },
  { name: 'HTTP 401 without a code', err: answer('', undefined, 401), kind: 'environment' },
  { name: 'a proxy answering 502', err: answer('Bad Gateway', undefined, 502), kind: 'environment' },
  { name: 'a code this list does not know', err: answer('Code: 999, Keeper exception', '999', 500), kind: 'environment' },
  { name: 'value too long for FixedString', err: answer('Code: 131, Too large value for FixedString(3)', '131', 500), kind: 'rows' },
  { name: 'unparsable row', err: answer('Code: 27, Cannot parse input: expected , before: x', '27', 500), kind: 'rows' },
  { name: 'request too large (no code)', err: answer('HTTP 413', undefined, 413), kind: 'rows' },
  {
    name: "a form field over the server's limit",
    err: answer('Poco::Exception. Code: 1000, HTML Form Exception: Field value too long', '1000', 500),
    kind: 'rows',
  },
])('a failed write caused by $name is "$kind"', ({ err, kind }) => {
  expect(writeFailureKind(err)).toBe(kind);
});

test('a programming error is retried, never taken for bad data', () => {
  expect(writeFailureKind(new PaysentinelError('CLICKHOUSE_QUERY_FAILED', 'statement too long'))).toBe('environment');
  expect(writeFailureKind(new TypeError('x is undefined'))).toBe('environment');
});
