import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { PaysentinelError } from '../errors/index.ts';

/** Reads a pid file; a missing or garbled file means "not started by us". */
export function readPid(pidFile: string): number | null {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * True while the process exists and is not a zombie. A zombie has exited but still answers
 * signal 0 until its parent reaps it, which happens when the same Node process started it.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /s.test(stat);
  } catch {
    // No /proc (macOS): signal 0 is all we have.
    return true;
  }
}

/**
 * Guards against pid reuse: a pid file left by a crash may now name an unrelated process,
 * which `down` must never signal. Without /proc we trust the pid file.
 */
export function commandLineContains(pid: number, needle: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(needle);
  } catch {
    return existsSync('/proc/self') ? false : true;
  }
}

/** The pid from `pidFile` if that process is alive and is the service we started. */
export function ourLivePid(pidFile: string, needle: string): number | null {
  const pid = readPid(pidFile);
  return pid !== null && isAlive(pid) && commandLineContains(pid, needle) ? pid : null;
}

export interface SpawnDetachedOptions {
  command: string;
  args: string[];
  cwd: string;
  /** stdout and stderr are appended here, so nothing is lost when we exit. */
  outFile: string;
  pidFile: string;
  env?: NodeJS.ProcessEnv;
}

/** A started background service: its pid and whether it has already exited. */
export interface DetachedProcess {
  pid: number;
  exited(): boolean;
}

/**
 * Starts a service in its own session so it outlives this CLI and ignores a Ctrl-C aimed at
 * it, then records its pid. Resolves once the process exists (or rejects if it cannot).
 */
export async function spawnDetached(o: SpawnDetachedOptions): Promise<DetachedProcess> {
  mkdirSync(dirname(o.outFile), { recursive: true });
  mkdirSync(dirname(o.pidFile), { recursive: true });
  const fd = openSync(o.outFile, 'a');
  let exited = false;
  try {
    const child = spawn(o.command, o.args, { cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio: ['ignore', fd, fd] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new PaysentinelError('STACK_FAILED', `Cannot run ${o.command}: ${err.message}`, { cause: err })));
    });
    child.once('exit', () => {
      exited = true;
    });
    child.unref();
    const pid = child.pid as number;
    writeFileSync(o.pidFile, `${pid}\n`);
    return { pid, exited: () => exited || !isAlive(pid) };
  } finally {
    closeSync(fd);
  }
}

export interface StopOptions {
  /** How long to wait after SIGTERM before SIGKILL. @default 20000 */
  graceMs?: number;
  /** @default 100 */
  pollMs?: number;
}

/** SIGTERM, wait until gone, SIGKILL after the grace period. Returns how it ended. */
export async function stopPid(pid: number, options: StopOptions = {}): Promise<'not-running' | 'terminated' | 'killed'> {
  const { graceMs = 20_000, pollMs = 100 } = options;
  if (!isAlive(pid)) return 'not-running';
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return 'terminated';
    await sleep(pollMs);
  }
  signal(pid, 'SIGKILL');
  // SIGKILL cannot be ignored; the wait only covers the kernel tearing the process down.
  const killDeadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < killDeadline) await sleep(pollMs);
  if (isAlive(pid)) throw new PaysentinelError('STACK_FAILED', `Process ${pid} survived SIGKILL.`);
  return 'killed';
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
};

/** Removes a pid file if present. */
export function removePidFile(pidFile: string): void {
  rmSync(pidFile, { force: true });
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  timeoutMs: number;
  /** @default 500 */
  intervalMs?: number;
  /** Stops waiting early with this message, e.g. when the process died. */
  giveUp?: () => string | null;
}

/**
 * Polls `check` until it returns true. Resolves `{ ok: false, reason }` on timeout or when
 * `giveUp` says so, so the caller can add the log tail to its error.
 */
export async function waitUntil(check: () => Promise<boolean>, o: WaitOptions): Promise<{ ok: true } | { ok: false; reason: string }> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 500;
  for (;;) {
    if (await check()) return { ok: true };
    const stop = o.giveUp?.();
    if (stop) return { ok: false, reason: stop };
    if (Date.now() >= deadline) return { ok: false, reason: `no answer after ${Math.round(o.timeoutMs / 1000)} s` };
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
  }
}

/** Last `lines` lines of a (possibly large) text file, or '' when it does not exist. */
export function tailFile(file: string, lines = 40): string {
  try {
    const size = statSync(file).size;
    const fd = openSync(file, 'r');
    try {
      // Reading only the end keeps this cheap for multi-megabyte server logs.
      const length = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(length);
      readSync(fd, buf, 0, length, size - length);
      return buf
        .toString('utf8')
        .split('\n')
        .filter((l, i, all) => l !== '' || i < all.length - 1)
        .slice(-lines)
        .join('\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Output goes here (appended); on failure its tail is in the error. */
  logFile: string;
}

/** Runs a command to completion, output to a log file; rejects with the log tail on failure. */
export async function runLogged(command: string, args: string[], o: RunOptions): Promise<void> {
  mkdirSync(dirname(o.logFile), { recursive: true });
  const fd = openSync(o.logFile, 'a');
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(command, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', fd, fd] });
      child.once('error', (err) => reject(new PaysentinelError('STACK_FAILED', `Cannot run ${command}: ${err.message}`, { cause: err })));
      child.once('exit', (c) => resolve(c));
    });
    if (code !== 0) {
      throw new PaysentinelError('STACK_FAILED', `${command} ${args.join(' ')} failed (exit ${code}). Last lines of ${o.logFile}:\n${tailFile(o.logFile, 30)}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** First executable called `name` on PATH (plus `extraDirs`), or null. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv, extraDirs: string[] = []): string | null {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}
