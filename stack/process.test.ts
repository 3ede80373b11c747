import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, ourLivePid, readPid, spawnDetached, stopPid, tailFile, waitUntil } from './process.ts';

const temps: string[] = [];
const started: number[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'paysentinel-proc-'));
  temps.push(dir);
  return dir;
};
afterEach(() => {
  // Never leave a test's sleeper behind, even when an assertion failed mid-way.
  for (const pid of started.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('pid files', () => {
  it('reads only sane pids', () => {
    const dir = tempDir();
    const file = join(dir, 'pid');
    expect(readPid(file)).toBeNull();
    writeFileSync(file, '1234\n');
    expect(readPid(file)).toBe(1234);
    for (const bad of ['', 'abc', '-5', '1', '12.5']) {
      writeFileSync(file, bad);
      expect(readPid(file), bad).toBeNull();
    }
  });
});

describe('spawnDetached and stopPid', () => {
  it('starts a background process, records its pid, and stops it with SIGTERM', async () => {
    const dir = tempDir();
    const proc = await spawnDetached({ command: 'sleep', args: ['30'], cwd: dir, outFile: join(dir, 'out'), pidFile: join(dir, 'pid') });
    started.push(proc.pid);
    expect(readFileSync(join(dir, 'pid'), 'utf8').trim()).toBe(String(proc.pid));
    expect(ourLivePid(join(dir, 'pid'), 'sleep')).toBe(proc.pid);
    // A pid whose command line does not match is not ours (pid reuse after a crash).
    expect(ourLivePid(join(dir, 'pid'), 'kafka.Kafka')).toBeNull();
    expect(proc.exited()).toBe(false);
    expect(await stopPid(proc.pid, { graceMs: 5000 })).toBe('terminated');
    expect(isAlive(proc.pid)).toBe(false);
    expect(await stopPid(proc.pid)).toBe('not-running');
  });

  it('kills a process that ignores SIGTERM after the grace period', async () => {
    const dir = tempDir();
    // An ignored signal stays ignored across exec, so sleep itself ignores SIGTERM.
    const proc = await spawnDetached({
      command: 'sh',
      args: ['-c', 'trap "" TERM; exec sleep 30'],
      cwd: dir,
      outFile: join(dir, 'out'),
      pidFile: join(dir, 'pid'),
    });
    started.push(proc.pid);
    await waitUntil(async () => readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').startsWith('sleep'), { timeoutMs: 5000, intervalMs: 20 });
    const t0 = Date.now();
    expect(await stopPid(proc.pid, { graceMs: 300, pollMs: 20 })).toBe('killed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(isAlive(proc.pid)).toBe(false);
  });

  it('rejects clearly when the command does not exist', async () => {
    const dir = tempDir();
    await expect(spawnDetached({ command: 'no-such-binary-xyz', args: [], cwd: dir, outFile: join(dir, 'out'), pidFile: join(dir, 'pid') })).rejects.toThrow(
      /Cannot run no-such-binary-xyz/,
    );
  });
});

describe('waitUntil', () => {
  it('resolves ok once the check passes', async () => {
    let n = 0;
    expect(await waitUntil(async () => ++n >= 3, { timeoutMs: 2000, intervalMs: 5 })).toEqual({ ok: true });
    expect(n).toBe(3);
  });

  it('times out, or gives up early with the reason', async () => {
    expect(await waitUntil(async () => false, { timeoutMs: 30, intervalMs: 5 })).toMatchObject({ ok: false, reason: expect.stringMatching(/no answer/) });
    expect(await waitUntil(async () => false, { timeoutMs: 5000, intervalMs: 5, giveUp: () => 'process 7 exited' })).toEqual({
      ok: false,
      reason: 'process 7 exited',
    });
  });
});

describe('tailFile', () => {
  it('returns the last lines, or empty for a missing file', () => {
    const dir = tempDir();
    const file = join(dir, 'log');
    writeFileSync(file, Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n');
    expect(tailFile(file, 3)).toBe('line 97\nline 98\nline 99');
    expect(tailFile(join(dir, 'missing'))).toBe('');
  });
});
