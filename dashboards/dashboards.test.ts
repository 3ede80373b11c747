import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { dashboardFiles, dashboardQueries, DEFAULT_DATABASE } from './build.ts';
import { expandMacros } from './macros.ts';
import { dashboard, queryVariable, type DashboardJson, type DashboardSpec } from './model.ts';

const jsonDir = new URL('./json/', import.meta.url);
const generated = dashboardFiles();
const boards = [...generated.values()].map((text) => JSON.parse(text) as DashboardJson);
const provisioned = parse(readFileSync(new URL('./provisioning/datasources/clickhouse.yaml', import.meta.url), 'utf8')) as {
  datasources: { uid: string; type: string; jsonData: { defaultDatabase: string } }[];
};

/** Every `datasource` object anywhere in a dashboard (panels, targets, variables). */
function datasourceRefs(node: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) node.forEach((n) => datasourceRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'datasource') out.push(value);
      else datasourceRefs(value, out);
    }
  }
  return out;
}

describe('provisioned dashboard JSON', () => {
  test('the committed files are exactly what dashboards/generate.ts writes (run it after editing dashboards/src)', () => {
    const committed = readdirSync(jsonDir)
      .filter((f) => f.endsWith('.json'))
      .sort();
    expect(committed).toEqual([...generated.keys()].sort());
    for (const [file, text] of generated) expect(readFileSync(new URL(file, jsonDir), 'utf8'), file).toBe(text);
  });

  test('every data source reference is the provisioned ClickHouse data source', () => {
    expect(provisioned.datasources).toHaveLength(1);
    const { uid, type, jsonData } = provisioned.datasources[0]!;
    expect(jsonData.defaultDatabase).toBe(DEFAULT_DATABASE);
    for (const board of boards) {
      const refs = datasourceRefs(board);
      expect(refs.length).toBeGreaterThan(board.panels.length);
      for (const ref of refs) expect(ref, board.uid).toEqual({ type, uid });
    }
  });

  test('dashboard uids are unique, stable-looking and short enough for Grafana; panel ids unique per dashboard', () => {
    const uids = boards.map((b) => b.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) expect(uid).toMatch(/^paysentinel-[a-z0-9-]{1,28}$/);
    for (const board of boards) {
      const ids = board.panels.map((p) => p.id);
      expect(new Set(ids).size, board.uid).toBe(ids.length);
      const titles = board.panels.map((p) => p.title);
      expect(new Set(titles).size, board.uid).toBe(titles.length);
    }
  });

  test.each(boards.map((b) => [b.title, b] as const))('%s has a valid dashboard shape', (_title, board) => {
    expect(board).toMatchObject({ schemaVersion: 41, timezone: 'utc', editable: false, time: { to: 'now' } });
    expect(board.time.from).toMatch(/^now-\d+[mhd]$/);
    expect(board.timepicker.refresh_intervals).toContain(board.refresh);
    expect(board.panels.length).toBeGreaterThan(0);
    for (const panel of board.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect([x, y, w, h].every(Number.isInteger), panel.title).toBe(true);
      expect(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, panel.title).toBe(true);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const t of panel.targets) {
        expect(t.rawSql.trim(), panel.title).not.toBe('');
        expect(t).toMatchObject(
          panel.type === 'timeseries' ? { editorType: 'sql', queryType: 'timeSeries', format: 0 } : { editorType: 'sql', queryType: 'table', format: 1 },
        );
      }
      expect(new Set(panel.targets.map((t) => t.refId)).size).toBe(panel.targets.length);
    }
    // Panels must not overlap on the grid.
    const cells = new Set<string>();
    for (const p of board.panels)
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), p.title).toBe(false);
          cells.add(`${x},${y}`);
        }
  });

  test('the Payment outcomes dashboard filters by channel and merchant, with All as the default', () => {
    const board = boards.find((b) => b.uid === 'paysentinel-payment-outcomes')!;
    expect(board.templating.list.map((v) => [v.name, v.includeAll, v.multi, v.current.value])).toEqual([
      ['channel', true, true, ['$__all']],
      ['merchant', true, true, ['$__all']],
    ]);
    const eventPanels = board.panels.filter((p) => p.targets.some((t) => t.rawSql.includes('payment_events')));
    for (const p of eventPanels) for (const t of p.targets) expect(t.rawSql, p.title).toMatch(/\$\{channel:singlequote\}[\s\S]*\$\{merchant:singlequote\}/);
  });

  test('the Risk & cases dashboard filters every case panel by channel and merchant, with All as the default', () => {
    const board = boards.find((b) => b.uid === 'paysentinel-risk-cases')!;
    expect(board.templating.list.map((v) => [v.name, v.includeAll, v.multi, v.current.value])).toEqual([
      ['channel', true, true, ['$__all']],
      ['merchant', true, true, ['$__all']],
    ]);
    for (const p of board.panels)
      for (const t of p.targets) expect(t.rawSql, p.title).toMatch(/case_versions[\s\S]*\$\{channel:singlequote\}[\s\S]*\$\{merchant:singlequote\}/);
  });

  test.each(dashboardQueries(DEFAULT_DATABASE).map((q) => [q.name, q.sql] as const))('%s uses only SQL that ClickHouse 18.16 runs', (_name, sql) => {
    // Query parameters look like {name:String}; template variables (${name:singlequote}) are fine.
    expect(sql).not.toMatch(
      /toStartOfInterval|\$__timeInterval|DateTime64|\b(OVER|over)\s*\(|(?<!\$)\{\w+:[A-Z]\w*\}|JSONExtract|visitParam|runningDifference|neighbor\(/,
    );
    // Bounded by the time picker: a range filter, or "as it stood at the end of the range".
    expect(sql).toMatch(/\$__timeFilter\(|\$__toTime/);
  });
});

describe('building with the SDK', () => {
  const spec = (panel: Partial<DashboardSpec['panels'][number]>): DashboardSpec => ({
    uid: 'paysentinel-x',
    title: 'x',
    description: '',
    tags: [],
    from: 'now-1h',
    refresh: '1m',
    variables: [],
    panels: [{ type: 'stat', title: 'p', description: '', w: 6, h: 4, sql: ['SELECT 1'], ...panel }],
  });

  test('a stat option replaces its default; the others keep theirs', () => {
    const board = dashboard(spec({ options: { colorMode: 'background' } })) as DashboardJson;
    expect(board.panels[0]!.options).toMatchObject({ colorMode: 'background', graphMode: 'none', textMode: 'auto' });
  });

  test("an option value outside Grafana's schema, or an option the panel type does not take, is an error", () => {
    // A spec typed loosely (e.g. built from data) still cannot write a value Grafana does not know.
    const bad = JSON.parse('{"colorMode":"purple"}') as { colorMode: 'value' };
    expect(() => dashboard(spec({ options: bad }))).toThrow(/"purple" is not one of/);
    expect(() => dashboard(spec({ type: 'table', options: { colorMode: 'value' } }))).toThrow(/stat panels only/);
    expect(() => dashboard(spec({ custom: { drawStyle: 'bars' } }))).toThrow(/time series panels only/);
  });
});

describe('expandMacros', () => {
  const variables = [queryVariable('channel', 'Channel', 'SELECT 1')];
  const base = { from: new Date(Date.UTC(2026, 10, 25, 10)), to: new Date(Date.UTC(2026, 10, 25, 11, 0, 0, 999)), intervalSeconds: 30.7, variables };

  test('expands the plugin macros as the plugin does (epoch seconds)', () => {
    expect(expandMacros('WHERE $__timeFilter(occurred_at) AND t < $__toTime - 5 AND t > $__fromTime GROUP BY intDiv(x, $__interval_s)', base)).toBe(
      'WHERE occurred_at >= toDateTime(1795600800) AND occurred_at <= toDateTime(1795604400) AND t < toDateTime(1795604400) - 5 AND t > ' +
        'toDateTime(1795600800) GROUP BY intDiv(x, 30)',
    );
  });

  test('a variable at All inserts its custom all value verbatim; picked values are quoted and escaped', () => {
    const q = "('__all' IN (${channel:singlequote}) OR channel IN (${channel:singlequote}))";
    expect(expandMacros(q, base)).toBe("('__all' IN ('__all') OR channel IN ('__all'))");
    expect(expandMacros(q, { ...base, selected: { channel: ["it's", 'card'] } })).toBe("('__all' IN ('it\\'s','card') OR channel IN ('it\\'s','card'))");
  });

  test('a macro or variable it does not know is an error, not SQL sent as is', () => {
    expect(() => expandMacros('SELECT $__timeInterval(t)', base)).toThrow(/Unexpanded macro/);
    expect(() => expandMacros('SELECT ${merchant:singlequote}', base)).toThrow(/does not define/);
    expect(() => expandMacros('SELECT $channel', base)).toThrow(/Unexpanded/);
  });
});
