import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PaysentinelError } from '../errors/index.ts';

/** One CLI subcommand. `run` returns the process exit code. */
export interface Command {
  name: string;
  /** Full `--help` text: usage, options, examples. */
  help: string;
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a subcommand's arguments strictly; unknown flags become a usage error that points
 * at `--help`. `--help` itself is handled by the caller before this runs.
 */
export function parseCommandArgs<O extends Options>(command: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new PaysentinelError('USAGE', `${(err as Error).message}\nRun "paysentinel ${command} --help" for usage.`, { cause: err });
  }
}

/** Parses a positive number option, with a usage error that names the flag. */
export function numberOption(command: string, flag: string, raw: string | undefined, fallback: number, min = 0): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new PaysentinelError('USAGE', `--${flag} ${JSON.stringify(raw)} is not a number >= ${min}.\nRun "paysentinel ${command} --help" for usage.`);
  }
  return n;
}
