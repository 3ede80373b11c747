import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from '../analytics/jobs.ts';
import { insertRows, queryRows } from '../storage/clickhouse.ts';
import { ident, sql, toDateTimeText } from '../storage/sql.ts';
import { importStatement, type ImportResult } from './import.ts';
import { periodInFileName } from './period.ts';
import { DEFAULT_STATEMENT_GRACE_MS, periodsToReconcile, reconcilePeriod } from './reconcile.ts';
import { formats, type StatementFormat } from './types.ts';

export const STATEMENTS_JOB = 'statements';
/** Periods ending longer ago than this are not looked at again by the job (import or `statements reconcile` still do). @default 7 days */
export const DEFAULT_PENDING_LOOKBACK_MS = 7 * 86_400_000;
/** At most this many new files are imported per run; the rest wait for the next. */
export const MAX_FILES_PER_RUN = 200;
/** A file in STATEMENTS_DIR is imported once it has not changed for this long. */
export const INBOX_SETTLE_MS = 60_000;

/** A file found in the inbox: its format (and channel) from the folders it sits in. */
export interface InboxFile {
  path: string;
  format: StatementFormat;
  channel?: string;
  sizeBytes: number;
  modifiedAtMs: number;
}

/**
 * The files under `dir` laid out as `<format>/<file>` or `<format>/<channel>/<file>` (generic
 * files need the channel folder). Anything else is ignored; hidden files too. Generic and Stripe
 * files name their period (period.ts periodInFileName); the others state it inside.
 */
export async function listInbox(dir: string): Promise<InboxFile[]> {
  const out: InboxFile[] = [];
  const walk = async (folder: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const path = join(folder, e.name);
      if (e.isDirectory() && depth < 2) await walk(path, depth + 1);
      else if (e.isFile() && depth >= 1) {
        const [format, ...rest] = relative(dir, path).split(sep);
        if (!(formats as readonly string[]).includes(format!)) continue;
        const channel = rest.length === 2 ? rest[0] : undefined;
        const s = await stat(path);
        out.push({ path, format: format as StatementFormat, channel, sizeBytes: s.size, modifiedAtMs: Math.floor(s.mtimeMs / 1000) * 1000 });
      }
    }
  };
  await walk(dir, 0);
  return out;
}

const seenQuery = (database: string, paths: readonly string[]): string =>
  sql`SELECT file_path, size_bytes, toUInt32(modified_at) AS modified_s FROM ${ident(database, 'statement_inbox')} WHERE file_path IN ${paths}`;

/** The inbox files already handled, keyed path|size|mtime. */
export const inboxSeenQuery = seenQuery;

export interface StatementsJobResult {
  imported: number;
  refused: number;
  alreadyImported: number;
  reconciled: number;
}

/**
 * The `statements` job: imports the new files of the inbox (each once, recorded in
 * statement_inbox with its outcome), then reconciles every period with a file imported since its
 * last run that has now ended plus the grace. Recorded in job_runs; rows = lines imported plus
 * periods reconciled.
 */
export async function run(deps: AnalyticsDeps, now: Date): Promise<JobRun> {
  const options = deps.statements ?? { dir: '', graceMs: DEFAULT_STATEMENT_GRACE_MS, maxBytes: 1024 ** 3 };
  const sdeps = { clickhouse: deps.clickhouse, database: deps.database, logger: deps.logger.child({ job: STATEMENTS_JOB }) };
  return runJob(deps, STATEMENTS_JOB, { from: new Date(now.getTime() - DEFAULT_PENDING_LOOKBACK_MS), to: now }, async () => {
    const result: StatementsJobResult = { imported: 0, refused: 0, alreadyImported: 0, reconciled: 0 };
    let rows = 0;
    if (options.dir !== '') {
      const found = await listInbox(options.dir);
      const seen = new Set<string>();
      for (let i = 0; i < found.length; i += 1000) {
        const paths = found.slice(i, i + 1000).map((f) => f.path);
        for (const r of await queryRows<Record<string, unknown>>(deps.clickhouse, seenQuery(deps.database, paths), 'read statement inbox')) {
          seen.add(`${r.file_path}|${r.size_bytes}|${Number(r.modified_s) * 1000}`);
        }
      }
      // A file changed in the last minute may still be being copied in: a generic or Stripe file cut
      // at a line boundary would parse as a shorter valid file, and the whole one would follow.
      const settled = (f: { modifiedAtMs: number }) => f.modifiedAtMs <= now.getTime() - INBOX_SETTLE_MS;
      const fresh = found.filter((f) => settled(f) && !seen.has(`${f.path}|${f.sizeBytes}|${f.modifiedAtMs}`)).slice(0, MAX_FILES_PER_RUN);
      for (const f of fresh) {
        let outcome: ImportResult | { status: 'failed'; reason: string };
        // Generic and Stripe files do not state their period: their name must (periodInFileName). A
        // generic file outside a channel folder is refused for that first (by importStatement).
        const named = f.format === 'stripe' || (f.format === 'generic' && f.channel) ? periodInFileName(basename(f.path)) : undefined;
        try {
          outcome =
            named && !named.ok
              ? { status: 'refused', fileName: basename(f.path), reason: named.reason, invalid: [], invalidCount: 0 }
              : await importStatement(sdeps, {
                  path: f.path,
                  format: f.format,
                  channel: f.channel,
                  maxBytes: options.maxBytes,
                  period: named?.period,
                  linesWithinPeriod: named !== undefined,
                });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // A file that vanished or cannot be read is recorded and skipped; a ClickHouse failure fails the run.
          if (code !== 'ENOENT' && code !== 'EACCES' && code !== 'EISDIR') throw err;
          outcome = { status: 'failed', reason: (err as Error).message };
        }
        if (outcome.status === 'imported') {
          result.imported++;
          rows += outcome.file.linesSettled + outcome.file.linesNotSettled + outcome.file.linesInvalid;
        } else if (outcome.status === 'already_imported') result.alreadyImported++;
        else if (outcome.status === 'refused' || outcome.status === 'failed') {
          result.refused++;
          sdeps.logger.warn('statement file refused', { file: f.path, reason: outcome.reason });
        }
        await insertRows(
          deps.clickhouse,
          ident(deps.database, 'statement_inbox').text,
          [
            {
              file_path: f.path,
              size_bytes: f.sizeBytes,
              modified_at: toDateTimeText(f.modifiedAtMs),
              seen_at: toDateTimeText(Date.now()),
              status: outcome.status,
              file_hash: 'file' in outcome ? outcome.file.hash : '',
              reason: outcome.status === 'refused' || outcome.status === 'failed' ? outcome.reason : '',
            },
          ],
          'record statement inbox file',
        );
      }
    }
    for (const key of await periodsToReconcile(sdeps, now.getTime() - DEFAULT_PENDING_LOOKBACK_MS)) {
      const outcome = await reconcilePeriod(sdeps, key, { graceMs: options.graceMs, now });
      if (outcome.status === 'reconciled') {
        result.reconciled++;
        rows++;
      }
    }
    sdeps.logger.info('statements job', { ...result });
    return rows;
  });
}

/** The schedule entry: every 5 minutes, in analyticsJobs. */
export const statementsScheduledJob: ScheduledJob = { name: STATEMENTS_JOB, cron: '*/5 * * * *', run: (deps, now) => run(deps, now) };
