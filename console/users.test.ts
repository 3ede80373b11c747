import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createUsersCommand } from './users-cli.ts';
import { canActOnCases, createUserStore, hashPassword, tokenHash, verifyPassword } from './users.ts';

const tempFile = () => join(mkdtempSync(join(tmpdir(), 'ps-users-')), 'users.json');

describe('password hashes', () => {
  test('a scrypt hash verifies its password only, and two hashes of one password differ (salted)', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
  });
});

describe('user store', () => {
  test('adds users with hashed passwords in a 0600 file, logs them in, lists and removes them', async () => {
    const path = tempFile();
    const store = createUserStore(path);
    await store.add('alice', 'support', 'alice-password-1');
    await store.add('victor', 'viewer', 'victor-password-1');
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain('alice-password-1');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(store.list().map((u) => [u.name, u.role])).toEqual([
      ['alice', 'support'],
      ['victor', 'viewer'],
    ]);
    expect(await store.login('alice', 'alice-password-1')).toMatchObject({ name: 'alice', role: 'support' });
    expect(await store.login('alice', 'victor-password-1')).toBeNull();
    expect(await store.login('nobody', 'alice-password-1')).toBeNull();
    store.remove('alice');
    expect(store.byName('alice')).toBeNull();
    expect(await store.login('alice', 'alice-password-1')).toBeNull();
  });

  test('refuses a duplicate name, a bad name, a short password and an unknown role', async () => {
    const store = createUserStore(tempFile());
    await store.add('bob', 'admin', 'bob-password-1');
    await expect(store.add('bob', 'viewer', 'bob-password-2')).rejects.toThrow(/exists already/);
    await expect(store.add('<b>', 'viewer', 'long-enough-pw')).rejects.toThrow(/is invalid/);
    await expect(store.add('carol', 'viewer', 'short')).rejects.toThrow(/10 to 1024/);
    await expect(store.add('carol', 'root' as never, 'long-enough-pw')).rejects.toThrow(/Role must be one of/);
  });

  test('an API token is stored only as its hash and finds its user until the user is removed', async () => {
    const path = tempFile();
    const store = createUserStore(path);
    await store.add('ops', 'risk', 'ops-password-1');
    const token = store.createToken('ops');
    expect(token).toMatch(/^pst_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(token);
    expect(text).toContain(tokenHash(token));
    expect(store.byToken(token)).toMatchObject({ name: 'ops', role: 'risk', tokens: 1 });
    expect(store.byToken(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBeNull();
    store.remove('ops');
    expect(store.byToken(token)).toBeNull();
  });

  test('a damaged file is reported with its path and how to fix it', () => {
    const path = tempFile();
    writeFileSync(path, '{"version": 1, "users": [{"name": "x", "role": "god"}]}');
    expect(() => createUserStore(path).list()).toThrow(/users file .* is not valid: user x has an unknown role "god"/);
  });

  test('roles: viewer reads only, support and above act on cases', () => {
    expect(canActOnCases('viewer')).toBe(false);
    expect(canActOnCases('support')).toBe(true);
    expect(canActOnCases('risk')).toBe(true);
    expect(canActOnCases('admin')).toBe(true);
  });
});

describe('paysentinel users', () => {
  afterEach(() => vi.unstubAllEnvs());

  const run = async (argv: string[], stdin = '') => {
    let out = '';
    const code = await createUsersCommand({ stdin: Readable.from([stdin]), stdout: { write: (s: string) => (out += s) } }).run(argv);
    return { code, out };
  };

  test('add reads the password from stdin, token prints the token as the last line, list --json, remove', async () => {
    const path = tempFile();
    vi.stubEnv('CONSOLE_USERS_FILE', path);
    expect((await run(['add', 'dana', '--role', 'support', '--password-stdin'], 'dana-password-1\n')).out).toBe('Added dana (support).\n');
    const { out } = await run(['token', 'dana']);
    const token = out.trimEnd().split('\n').at(-1)!;
    expect(createUserStore(path).byToken(token)?.name).toBe('dana');
    expect(await createUserStore(path).login('dana', 'dana-password-1')).not.toBeNull();
    const listed = (await run(['list', '--json'])).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(listed).toEqual([{ name: 'dana', role: 'support', created_at: expect.any(String), tokens: 1 }]);
    await run(['remove', 'dana']);
    expect((await run(['list'])).out).toMatch(/No users yet/);
  });

  test('refuses a password on the command line and an unknown role', async () => {
    vi.stubEnv('CONSOLE_USERS_FILE', tempFile());
    await expect(run(['add', 'eve', '--role', 'support'])).rejects.toThrow(/--password-stdin/);
    await expect(run(['add', 'eve', '--role', 'boss', '--password-stdin'], 'eve-password-1')).rejects.toThrow(/--role viewer\|support\|risk\|admin/);
  });
});
