import { afterAll, describe, expect, test, vi } from 'vitest';
import { createCaseStore, type InboxCursor, type InboxFilter } from '../../cases/index.ts';
import { createCaseFeed, type CaseChangeNotice } from '../../console/live.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { bootstrapStatements, loadMigrations, migrate } from '../../storage/migrations.ts';
import { ident, sql } from '../../storage/sql.ts';
import { services } from './helpers.ts';

/**
 * Migrations 023's and 026's copies of case_versions on the real ClickHouse: cases stored before the upgrade
 * are carried into them, the inbox, the counts and an entity's cases read from them agree with the
 * `cases` view (the current state by definition) while older versions are still unmerged, and the
 * live feed announces each change once, a late one too.
 */
const s = services();
const database = s.config.clickhouseDatabase;
const versions = ident(database, 'case_versions');
afterAll(() => s.cleanup());

const T0 = Date.UTC(2026, 10, 1, 12);
const text = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
const SEVERITIES = ['critical', 'high', 'medium', 'low'];

/** One stored version of case `i`: `patch` changes what support or detection changed. */
function version(i: number, v: number, patch: Record<string, unknown> = {}) {
  const opened = T0 + i * 60_000;
  return {
    case_id: `C'${String(i).padStart(4, '0')}`,
    version: opened + v * 1_000,
    rule_id: ['charged_but_failed', 'ip_amount_probing'][i % 2],
    rule_version: 'v1',
    title: 'A case',
    severity: SEVERITIES[i % 4],
    action: 'notify_support',
    entity_type: ['order', 'ip'][i % 2],
    entity_id: `e-${i % 40}`,
    status: 'open',
    opened_at: text(opened),
    updated_at: text(opened + v * 1_000),
    hit_count: v,
    evidence: JSON.stringify({ n: v }),
    recommended_action: 'Look at it.',
    changed_by: 'detector',
    note: '',
    assignee: '',
    resolution: '',
    ...patch,
  };
}

/**
 * 300 cases; 200 of them were critical and are low now (a later version), and those sort first
 * among the critical rows: a first page of the inbox finds its candidate rows crowded by older
 * versions and must ask over every case. Others were acknowledged, resolved, or taken by automation.
 */
function history() {
  const rows = [];
  for (let i = 0; i < 300; i++) {
    rows.push(version(i, 1));
    if (i >= 100) {
      rows[rows.length - 1] = version(i, 1, { severity: 'critical' });
      rows.push(version(i, 2, { severity: 'low' }));
    }
    if (i % 7 === 0) rows.push(version(i, 3, { status: 'acknowledged', assignee: 'ana' }));
    if (i % 11 === 0) rows.push(version(i, 4, { status: 'resolved', resolution: 'false_positive' }));
    if (i % 13 === 0) rows.push(version(i, 5, { assignee: 'automation' }));
  }
  return rows;
}

const SEVERITY_RANK = `multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, severity = 'low', 3, 4)`;

/** The inbox as the `cases` view orders it: every case id that passes, in inbox order. */
async function fromView(where: string): Promise<string[]> {
  const rows = await queryRows<{ case_id: string }>(
    s.clickhouse,
    `SELECT case_id, ${SEVERITY_RANK} AS sev_rank FROM ${ident(database, 'cases').text} WHERE ${where} ORDER BY sev_rank, opened_at DESC, case_id`,
  );
  return rows.map((r) => r.case_id);
}

describe('copies of case_versions for the console (migrations 023 and 026)', () => {
  const producer = s.kafka.producer();
  const store = () => createCaseStore({ clickhouse: s.clickhouse, database, producer, topic: s.config.casesTopic });

  test('an upgrade carries the stored cases: the inbox pages, counts and an entity cases match the cases view', async () => {
    // The database as it stood before 023, with cases in it.
    for (const statement of bootstrapStatements(database)) await command(s.clickhouse, statement);
    for (const m of loadMigrations(database).filter((x) => x.version < 23)) {
      for (const statement of m.statements) await command(s.clickhouse, statement);
      await command(s.clickhouse, sql`INSERT INTO ${ident(database, 'schema_migrations')} VALUES (${m.version}, ${m.name}, ${new Date()})`);
    }
    await insertRows(s.clickhouse, versions.text, history());
    // 023 and every migration after it.
    expect(await migrate(s.clickhouse, database, silentLogger)).toEqual(
      loadMigrations(database)
        .filter((x) => x.version >= 23)
        .map((x) => x.version),
    );
    // The live feed's copy (026 replaced 023's case_changes) holds every version, with its entity.
    const copied = await queryRows<{ n: string; entities: string }>(
      s.clickhouse,
      `SELECT count() AS n, uniqExact(entity_type, entity_id) AS entities FROM ${ident(database, 'case_feed').text}`,
    );
    expect(copied.map((r) => [Number(r.n), Number(r.entities)])).toEqual([
      [history().length, new Set(history().map((r) => `${r.entity_type}|${r.entity_id}`)).size],
    ]);
    // 023's copy stays for consoles of the previous version during an upgrade, and is still filled.
    const old = await queryRows<{ n: string }>(s.clickhouse, `SELECT count() AS n FROM ${ident(database, 'case_changes').text}`);
    expect(Number(old[0]!.n)).toBe(history().length);

    const cases = store();
    const counts = await queryRows<{ status: string; n: string }>(s.clickhouse, `SELECT status, count() AS n FROM ${database}.cases GROUP BY status`);
    expect(await cases.countsByStatus()).toEqual(Object.fromEntries(counts.map((r) => [r.status, Number(r.n)])));

    // Every page of several filters, through the cursor, against the view's order.
    const filters: [Omit<InboxFilter, 'limit' | 'after'>, string][] = [
      [{}, '1'],
      [{ notAssignee: 'automation' }, "assignee != 'automation'"],
      [{ status: 'open', severity: 'low' }, "status = 'open' AND severity = 'low'"],
      [{ severity: 'critical' }, "severity = 'critical'"],
      [{ rule: 'ip_amount_probing', assignee: '' }, "rule_id = 'ip_amount_probing' AND assignee = ''"],
      [{ q: 'e-3' }, "(case_id = 'e-3' OR entity_id = 'e-3')"],
    ];
    for (const [filter, where] of filters) {
      const expected = await fromView(where);
      const seen: string[] = [];
      let after: InboxCursor | undefined;
      for (;;) {
        const page = await cases.inbox({ ...filter, limit: 10, after });
        seen.push(...page.cases.map((c) => c.case_id));
        if (!page.next) break;
        after = page.next;
      }
      expect(seen, JSON.stringify(filter)).toEqual(expected);
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(0);
    }
    // A page's cases are the current state, in full.
    const first = (await cases.inbox({ severity: 'low', limit: 1 })).cases[0]!;
    expect(first).toEqual(await cases.get(first.case_id));

    const ofEntity = await cases.ofEntities('ip', ['e-3', 'e-5', 'nobody']);
    const expected = await queryRows<{ case_id: string }>(
      s.clickhouse,
      `SELECT case_id FROM ${database}.cases WHERE entity_type = 'ip' AND entity_id IN ('e-3', 'e-5') ORDER BY opened_at DESC, case_id`,
    );
    expect(ofEntity.map((c) => c.case_id)).toEqual(expected.map((r) => r.case_id));
    expect(ofEntity.every((c) => c.hit_count >= 1 && typeof c.evidence === 'object')).toBe(true);
  });

  test('the live feed announces each new change once, one that becomes visible after a later one too, and nothing stored before; a change is announced once the inbox can read it', async () => {
    // The feed's clock at the subscription is after every stored version: those are not news.
    const newest = Number((await queryRows<{ v: string }>(s.clickhouse, `SELECT max(version) AS v FROM ${versions.text}`))[0]!.v);
    const subscribedAt = Math.max(newest, Date.now()) + 1;
    // Stored a few seconds before the subscription, within the first poll's read: not news.
    await insertRows(s.clickhouse, versions.text, [version(3, 9, { version: subscribedAt - 5_000, status: 'acknowledged' })]);
    const feed = createCaseFeed({ clickhouse: s.clickhouse, database, intervalMs: 100, logger: silentLogger, now: () => subscribedAt });
    const heard: CaseChangeNotice[] = [];
    const stop = feed.subscribe((changes) => heard.push(...changes));
    try {
      const now = subscribedAt + 10_000;
      // Stored at once, maybe before the feed's first poll has read anything: still news.
      await insertRows(s.clickhouse, versions.text, [version(0, 9, { version: now, status: 'resolved' })]);
      await vi.waitFor(() => expect(heard.map((c) => c.case_id)).toContain("C'0000"));
      // Written by a slower writer: a version older than the one already announced.
      await insertRows(s.clickhouse, versions.text, [version(1, 9, { version: now - 5_000, status: 'acknowledged' })]);
      await vi.waitFor(() => expect(heard.map((c) => `${c.case_id}:${c.status}`)).toContain("C'0001:acknowledged"));
      // Once a later marker is heard, the polls since have read the changes above again: none twice.
      await insertRows(s.clickhouse, versions.text, [version(2, 9, { version: now + 1_000, status: 'acknowledged' })]);
      await vi.waitFor(() => expect(heard.map((c) => c.case_id)).toContain("C'0002"));
      expect(new Set(heard.map((c) => `${c.case_id}|${c.version}`)).size).toBe(heard.length);
      expect(heard.filter((c) => c.case_id === "C'0001")).toHaveLength(1);
      expect(heard.every((c) => Number(c.version) >= now - 5_000)).toBe(true);
      expect(heard.map((c) => c.case_id)).not.toContain("C'0003");

      // A change the feed can read but the inbox cannot yet (case_state is filled by another view
      // of the same INSERT, maybe later): held until case_state has it, then announced once.
      const early = version(4, 9, { version: now + 2_000, status: 'acknowledged' });
      await insertRows(s.clickhouse, ident(database, 'case_feed').text, [
        {
          version: early.version,
          case_id: early.case_id,
          status: early.status,
          severity: early.severity,
          updated_at: early.updated_at,
          entity_type: early.entity_type,
          entity_id: early.entity_id,
        },
      ]);
      // A later change stored whole: once it is heard, polls have read the early one and held it.
      await insertRows(s.clickhouse, versions.text, [version(5, 9, { version: now + 3_000, status: 'acknowledged' })]);
      await vi.waitFor(() => expect(heard.map((c) => c.case_id)).toContain("C'0005"));
      expect(heard.map((c) => c.case_id)).not.toContain("C'0004");
      const { case_id, version: v, entity_type, entity_id, rule_id, severity, status, assignee, resolution, opened_at, updated_at, hit_count } = early;
      await insertRows(s.clickhouse, ident(database, 'case_state').text, [
        { entity_type, entity_id, case_id, version: v, rule_id, severity, status, assignee, resolution, opened_at, updated_at, hit_count },
      ]);
      await vi.waitFor(() => expect(heard.map((c) => c.case_id)).toContain("C'0004"));
      expect(heard.filter((c) => c.case_id === "C'0004").map((c) => [c.version, c.status])).toEqual([[String(now + 2_000), 'acknowledged']]);
    } finally {
      stop();
      feed.stop();
    }
  });
});
