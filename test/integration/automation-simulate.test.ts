import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { StoredCommand } from '../../automation/index.ts';
import { createCaseStore, SYSTEM_RESOLUTION, type CaseStore } from '../../cases/index.ts';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { queryRows } from '../../storage/clickhouse.ts';
import { ident, sql } from '../../storage/sql.ts';
import { startCommandAnswerer } from '../../simulator/answer.ts';
import { readWholeTopic, repoRoot, services } from './helpers.ts';

/**
 * `paysentinel simulate --answer-commands` plays the gateway for a pipeline with AUTOMATION=on:
 * the stuck-processing scenario's status query is answered by a status_query event with the
 * final status, the duplicate charge's refunds by refund events and results; the cases close by
 * those outcomes, with nobody in support's inbox.
 */
const tag = randomUUID().slice(0, 8);
const s = services({
  AUTOMATION: 'on',
  AUTOMATION_REFUNDS: 'on',
  // The scenario charges up to 899.99 and two or three times: every extra charge fits.
  AUTO_REFUND_MAX_MINOR: '100000',
  AUTO_REFUND_DAILY_MINOR: '10000000',
  DETECTION_TICK_MS: '200',
  // The simulated gateway's consumer group is named after the client id: this test's own.
  KAFKA_CLIENT_ID: `t${tag}`,
});
const db = s.config.clickhouseDatabase;
const dir = mkdtempSync(join(tmpdir(), 'answer-commands-'));
let pipeline: RunningPipeline | undefined;
let store: CaseStore;
/** The pipeline's warnings and errors, shown when the test fails. */
const logLines: string[] = [];

beforeAll(async () => {
  pipeline = await startPipeline(s.config, createLogger({ level: 'warn', write: (l) => logLines.push(l) }));
  store = createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: s.config.casesTopic });
});
afterAll(async () => {
  await pipeline?.stop();
  await s.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const commandsOf = (caseId: string) =>
  queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE case_id = ${caseId} ORDER BY attempt, command_id`);

describe('simulate --answer-commands', () => {
  test('the stuck-processing and duplicate-charge scenarios get their commands answered like a gateway would, and the cases close by outcome', async () => {
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const labelsFile = join(dir, 'labels.json');
    const args = ['simulate', '--rate', '20', '--duration', '6s', '--seed', '17', '--scenario', 'stuck-processing,duplicate-charge'];
    const child = spawn(process.execPath, ['bin/paysentinel.mjs', ...args, '--answer-commands', '--labels', labelsFile], {
      cwd: repoRoot,
      env: { ...process.env, ...s.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Both cases close by the gateway's answers: the stuck one by resolve_when (the status query
      // brought the final status), the duplicate charge as handled (the refund was made).
      const closed = async () => {
        if (child.exitCode !== null) {
          const cases = (await store.list({})).map((c) => [c.case_id, c.rule_id, c.entity_id, c.status, c.resolution, c.assignee]);
          const commands = await queryRows(
            s.clickhouse,
            sql`SELECT command_id, type, case_id, order_id, attempt, status, detail FROM ${ident(db, 'commands')}`,
          );
          const log = logLines.slice(-30).join('\n');
          throw new Error(`simulate stopped answering first: ${output}\ncases: ${JSON.stringify(cases)}\ncommands: ${JSON.stringify(commands)}\nlog:\n${log}`);
        }
        return (await store.list({}))
          .filter((c) => c.rule_id === 'stuck_processing' || c.rule_id === 'duplicate_charge')
          .map((c) => `${c.rule_id} ${c.status} ${c.resolution}`)
          .sort();
      };
      await expect
        .poll(closed, { timeout: 150_000, interval: 500 })
        .toEqual(['duplicate_charge resolved handled_automatically', `stuck_processing resolved ${SYSTEM_RESOLUTION}`]);
    } finally {
      // It would answer for another minute; the first SIGTERM stops it cleanly (labels written).
      child.kill('SIGTERM');
    }
    expect(await exited, output).toBe(0);
    expect(output).toMatch(/simulate: answered \d+ command\(s\) as the gateway/);

    const labels = JSON.parse(readFileSync(labelsFile, 'utf8')) as { scenarios: { scenario: string; entity_id: string; event_ids: string[] }[] };
    const stuckOrder = labels.scenarios.find((l) => l.scenario === 'stuck-processing')!.entity_id;
    const charged = labels.scenarios.find((l) => l.scenario === 'duplicate-charge')!;
    const [stuckCase] = await store.list({ rule: 'stuck_processing' });
    const [chargeCase] = await store.list({ rule: 'duplicate_charge' });
    expect([stuckCase!.entity_id, chargeCase!.entity_id]).toEqual([stuckOrder, charged.entity_id]);

    // The stuck attempt: one status query, answered by the simulator's status_query event.
    const [requery] = await commandsOf(stuckCase!.case_id);
    expect(await commandsOf(stuckCase!.case_id)).toHaveLength(1);
    expect(requery).toMatchObject({ type: 'requery_status', mode: 'on', status: 'done', order_id: stuckOrder, attempt: 1 });
    // (The requery job may have asked about the same attempt too: either answer closes it.)
    expect(requery!.detail).toMatch(/^answered by payment event ans-K[0-9a-f]{24}: succeeded$/);
    expect(stuckCase!.evidence.closed_by).toMatchObject({ event: { status: 'succeeded', source: 'status_query', attempt: 1 } });

    // The duplicate charge: one refund per extra charge (every attempt after the first), each made once.
    const refunds = await commandsOf(chargeCase!.case_id);
    const charges = charged.event_ids.length;
    expect(refunds.map((r) => [r.type, r.attempt, r.status])).toEqual(Array.from({ length: charges - 1 }, (_, i) => ['refund', i + 2, 'done']));
    const answers = await queryRows<{ event_id: string; type: string; status: string; attempt: number }>(
      s.clickhouse,
      sql`SELECT event_id, type, status, attempt FROM ${ident(db, 'payment_events')}
WHERE order_id = ${charged.entity_id} AND type = 'refund' ORDER BY attempt`,
    );
    expect(answers).toEqual(refunds.map((r) => ({ event_id: `ans-${r.command_id}`, type: 'refund', status: 'succeeded', attempt: r.attempt })));
    // The gateway also confirmed each refund on the results topic.
    const results = (await readWholeTopic(s.kafka, s.config.commandResultsTopic)).map((m) => JSON.parse(m.value));
    for (const r of refunds) expect(results).toContainEqual({ command_id: r.command_id, status: 'done', detail: 'refunded' });
    // Nothing of either case is left for support: both were closed by the system.
    const history = await store.history(chargeCase!.case_id);
    expect(history.at(-1)).toMatchObject({ changed_by: 'automation', status: 'resolved' });
    expect(history.at(-1)!.note).toMatch(/^Handled automatically: refund K[0-9a-f]{24} for order .* done/);
  });

  test('the simulated gateway answers a command published the moment it has started, before its new consumer group has joined', async () => {
    const producer = s.kafka.producer();
    await producer.connect();
    const answerer = await startCommandAnswerer({
      kafka: s.kafka,
      producer,
      groupId: `t${tag}-gateway-${randomUUID().slice(0, 8)}`,
      commandsTopic: s.config.commandsTopic,
      eventsTopic: s.config.eventsTopic,
      resultsTopic: s.config.commandResultsTopic,
      orders: new Map(),
      logger: silentLogger,
    });
    try {
      const commandId = 'K' + randomUUID().replace(/-/g, '').slice(0, 24);
      const at = new Date().toISOString();
      const block = {
        command_id: commandId,
        type: 'block',
        case_id: 'C1',
        rule_id: 'ip_amount_probing',
        entity_type: 'ip',
        entity_id: '198.51.100.7',
        ttl: 60,
      };
      await producer.send({
        topic: s.config.commandsTopic,
        acks: -1,
        messages: [{ key: '198.51.100.7', value: JSON.stringify({ ...block, issued_at: at, expires_at: at, reason: 'test' }) }],
      });
      await expect.poll(() => answerer.answered(), { timeout: 30_000, interval: 200 }).toBe(1);
      const results = (await readWholeTopic(s.kafka, s.config.commandResultsTopic)).map((m) => JSON.parse(m.value));
      expect(results).toContainEqual({ command_id: commandId, status: 'done', detail: 'blocked ip 198.51.100.7 for 60 s' });
    } finally {
      await answerer.stop();
      await producer.disconnect();
    }
  });
});
