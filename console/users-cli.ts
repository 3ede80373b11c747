import { parseCommandArgs, type Command } from '../cli/command.ts';
import { loadConfig } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { MAX_PASSWORD, createUserStore, roles, type Role } from './users.ts';

const help = `paysentinel users: who may use the support console, and with which role

Usage:
  paysentinel users add NAME --role viewer|support|risk|admin --password-stdin
  paysentinel users list [--json]
  paysentinel users remove NAME
  paysentinel users token NAME

add      Creates a user; the password is read from standard input (first line) and stored
         as a scrypt hash.
list     Names, roles, creation times and how many API tokens each user has.
remove   Deletes a user; their sessions and tokens stop working at once.
token    Creates an API token (for "Authorization: Bearer TOKEN") and prints it as the last
         line. Only its hash is kept: store it now, it cannot be shown again.

Roles: viewer reads; support also assigns, acknowledges and resolves cases; risk is support
plus the rules' details; admin is everything. The users live in CONSOLE_USERS_FILE.

Examples:
  printf '%s\\n' "$PASSWORD" | paysentinel users add alice --role support --password-stdin
  paysentinel users token alice`;

/** The first line of standard input, bounded: a password is never taken from the command line. */
async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stdin) {
    text += chunk.toString();
    if (text.length > MAX_PASSWORD + 2) throw new PaysentinelError('USAGE', `The password must be at most ${MAX_PASSWORD} characters long.`);
  }
  return text.split(/\r?\n/)[0] ?? '';
}

export function createUsersCommand(io: { stdin: NodeJS.ReadableStream; stdout: { write(s: string): unknown } } = process): Command {
  return {
    name: 'users',
    help,
    async run(argv) {
      const { values, positionals } = parseCommandArgs(
        'users',
        argv,
        { role: { type: 'string' }, 'password-stdin': { type: 'boolean' }, json: { type: 'boolean' } },
        true,
      );
      const [action, name, ...extra] = positionals;
      const usage = (msg: string) => new PaysentinelError('USAGE', `${msg}\nRun "paysentinel users --help" for usage.`);
      if (!action || !['add', 'list', 'remove', 'token'].includes(action)) throw usage('Say what to do: add, list, remove or token.');
      if (action !== 'list' && !name) throw usage(`"users ${action}" needs a user name.`);
      if (extra.length > 0) throw usage(`Unexpected argument ${JSON.stringify(extra[0])}.`);
      const store = createUserStore(loadConfig().consoleUsersFile);
      if (action === 'add') {
        if (!values.role || !(roles as readonly string[]).includes(values.role)) throw usage(`"users add" needs --role ${roles.join('|')}.`);
        if (!values['password-stdin']) throw usage('"users add" needs --password-stdin (the password is never taken from the command line).');
        const user = await store.add(name!, values.role as Role, await readPassword(io.stdin));
        io.stdout.write(`Added ${user.name} (${user.role}).\n`);
      } else if (action === 'list') {
        const users = store.list();
        if (values.json) io.stdout.write(users.map((u) => JSON.stringify(u) + '\n').join(''));
        else
          io.stdout.write(
            users.length === 0
              ? 'No users yet: "paysentinel users add" creates one.\n'
              : users.map((u) => `${u.name.padEnd(24)} ${u.role.padEnd(8)} ${u.created_at}  ${u.tokens} token(s)\n`).join(''),
          );
      } else if (action === 'remove') {
        store.remove(name!);
        io.stdout.write(`Removed ${name}.\n`);
      } else {
        const token = store.createToken(name!);
        io.stdout.write(`API token for ${name} (shown once; send it as "Authorization: Bearer TOKEN"):\n${token}\n`);
      }
      return 0;
    },
  };
}
