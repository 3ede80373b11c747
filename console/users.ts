import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { PaysentinelError } from '../errors/index.ts';

/** What each role may do: a role includes every permission of the roles before it. */
export const roles = ['viewer', 'support', 'risk', 'admin'] as const;
export type Role = (typeof roles)[number];

/** `support` and above act on cases; `viewer` only reads. */
export const canActOnCases = (role: Role): boolean => roles.indexOf(role) >= roles.indexOf('support');
/** Risk and admin see the rules' conditions and templates on the rules page; everyone sees the numbers. */
export const mayReadRuleDetails = (role: Role): boolean => roles.indexOf(role) >= roles.indexOf('risk');

export const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
export const MIN_PASSWORD = 10;
export const MAX_PASSWORD = 1024;
/** At most this many API tokens per user: the file stays small and every token stays findable. */
export const MAX_TOKENS = 20;

const scryptParams = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KEY_LENGTH = 32;

const scrypt = (password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> =>
  new Promise((resolve, reject) => scryptCb(password, salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))));

/** `scrypt$N$r$p$salt$key` (base64): the parameters travel with the hash so they can be raised later. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, scryptParams);
  return ['scrypt', scryptParams.N, scryptParams.r, scryptParams.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length !== KEY_LENGTH) return false;
  const key = await scrypt(password, Buffer.from(parts[4]!, 'base64'), { N, r, p, maxmem: scryptParams.maxmem });
  return timingSafeEqual(key, expected);
}

/** API tokens carry 256 random bits, so a plain SHA-256 is enough to store them (no salt or stretching needed). */
export const tokenHash = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

interface StoredToken {
  id: string;
  hash: string;
  created_at: string;
}

interface StoredUser {
  name: string;
  role: Role;
  password: string;
  created_at: string;
  tokens: StoredToken[];
}

interface UsersFile {
  version: 1;
  users: StoredUser[];
}

/** A user as the rest of the console sees it: never a hash. */
export interface User {
  name: string;
  role: Role;
  created_at: string;
  tokens: number;
}

const publicUser = (u: StoredUser): User => ({ name: u.name, role: u.role, created_at: u.created_at, tokens: u.tokens.length });

const invalid = (path: string, why: string): never => {
  throw new PaysentinelError('USERS_INVALID', `The users file ${path} is not valid: ${why}. Fix or remove it (CONSOLE_USERS_FILE names it).`);
};

function parseFile(path: string, text: string): UsersFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return invalid(path, `not JSON (${(err as Error).message})`);
  }
  const file = data as Partial<UsersFile>;
  if (!file || file.version !== 1 || !Array.isArray(file.users)) return invalid(path, 'expected {"version": 1, "users": [...]}');
  for (const u of file.users) {
    if (!u || typeof u.name !== 'string' || !USER_NAME.test(u.name)) return invalid(path, `a user has a bad name ${JSON.stringify(u?.name)}`);
    if (!(roles as readonly string[]).includes(u.role)) return invalid(path, `user ${u.name} has an unknown role ${JSON.stringify(u.role)}`);
    if (typeof u.password !== 'string' || !Array.isArray(u.tokens)) return invalid(path, `user ${u.name} lacks a password hash or token list`);
  }
  return file as UsersFile;
}

/**
 * The console's users in one JSON file (mode 0600), re-read on every call so `paysentinel users`
 * run beside a running console takes effect at once, and written whole through a rename so a
 * reader never sees half a file.
 */
export function createUserStore(path: string) {
  const read = (): UsersFile => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, users: [] };
      throw new PaysentinelError('USERS_INVALID', `Cannot read the users file ${path}: ${(err as Error).message}`, { cause: err });
    }
    return parseFile(path, text);
  };
  const save = (file: UsersFile): void => {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  };
  const usage = (message: string) => new PaysentinelError('USAGE', message);
  const find = (file: UsersFile, name: string): StoredUser => {
    const user = file.users.find((u) => u.name === name);
    if (!user) throw usage(`No user ${JSON.stringify(name)}. "paysentinel users list" shows them.`);
    return user;
  };

  return {
    async add(name: string, role: Role, password: string, now = new Date()): Promise<User> {
      if (!USER_NAME.test(name)) throw usage(`User name ${JSON.stringify(name)} is invalid: 1-64 letters, digits, ".", "_", "@" or "-".`);
      if (!(roles as readonly string[]).includes(role)) throw usage(`Role must be one of ${roles.join(', ')}.`);
      if (password.length < MIN_PASSWORD || password.length > MAX_PASSWORD)
        throw usage(`The password must be ${MIN_PASSWORD} to ${MAX_PASSWORD} characters long.`);
      const hash = await hashPassword(password);
      const file = read();
      if (file.users.some((u) => u.name === name)) throw usage(`User ${JSON.stringify(name)} exists already; remove it first to change it.`);
      const user: StoredUser = { name, role, password: hash, created_at: now.toISOString(), tokens: [] };
      file.users.push(user);
      save(file);
      return publicUser(user);
    },

    list(): User[] {
      return read().users.map(publicUser);
    },

    remove(name: string): void {
      const file = read();
      find(file, name);
      save({ ...file, users: file.users.filter((u) => u.name !== name) });
    },

    /** Creates an API token for `name`; the token is returned once and only its hash is kept. */
    createToken(name: string, now = new Date()): string {
      const file = read();
      const user = find(file, name);
      if (user.tokens.length >= MAX_TOKENS) throw usage(`User ${name} has ${MAX_TOKENS} tokens already; remove and re-add the user to start over.`);
      const id = randomBytes(6).toString('hex');
      const token = `pst_${id}_${randomBytes(32).toString('base64url')}`;
      user.tokens.push({ id, hash: tokenHash(token), created_at: now.toISOString() });
      save(file);
      return token;
    },

    /** The user a name and password belong to, or null (also for an unknown name, after the same work). */
    async login(name: string, password: string): Promise<User | null> {
      if (password.length > MAX_PASSWORD) return null;
      const user = read().users.find((u) => u.name === name);
      // An unknown name costs a hash too, so timing does not tell which names exist.
      const ok = await verifyPassword(password, user?.password ?? DUMMY_HASH);
      return user && ok ? publicUser(user) : null;
    },

    /** The user an API token belongs to, or null. */
    byToken(token: string): User | null {
      if (token.length > 200) return null;
      const hash = Buffer.from(tokenHash(token), 'hex');
      for (const u of read().users) {
        if (u.tokens.some((t) => timingSafeEqual(Buffer.from(t.hash, 'hex'), hash))) return publicUser(u);
      }
      return null;
    },

    /** The user of a session, re-read so a removed user's sessions stop working at once. */
    byName(name: string): User | null {
      const user = read().users.find((u) => u.name === name);
      return user ? publicUser(user) : null;
    },
  };
}
export type UserStore = ReturnType<typeof createUserStore>;

// A valid hash of a random password, checked against when a name is unknown.
const DUMMY_HASH = [
  'scrypt',
  scryptParams.N,
  scryptParams.r,
  scryptParams.p,
  randomBytes(16).toString('base64'),
  randomBytes(KEY_LENGTH).toString('base64'),
].join('$');
