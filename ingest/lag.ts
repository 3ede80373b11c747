import type { Admin } from 'kafkajs';
import type { Logger } from '../log/index.ts';
import type { Gauge } from '../metrics/registry.ts';

/**
 * Computes consumer lag per partition (high watermark minus the group's committed offset) and
 * publishes it on a gauge. Uses the group's committed offsets, so it is right with several instances.
 */
export async function measureLag(admin: Admin, groupId: string, topic: string): Promise<Map<number, number>> {
  const [high, committed] = await Promise.all([admin.fetchTopicOffsets(topic), admin.fetchOffsets({ groupId, topics: [topic] })]);
  const committedByPartition = new Map<number, bigint>();
  for (const t of committed) for (const p of t.partitions) committedByPartition.set(p.partition, BigInt(p.offset));
  const lag = new Map<number, number>();
  for (const p of high) {
    const end = BigInt(p.high);
    const low = BigInt(p.low);
    const done = committedByPartition.get(p.partition) ?? -1n;
    const from = done < 0n ? low : done;
    lag.set(p.partition, Number(end > from ? end - from : 0n));
  }
  return lag;
}

/** Polls lag every `intervalMs` until stopped. */
export function startLagPoller(deps: { admin: Admin; groupId: string; topic: string; gauge: Gauge; logger: Logger; intervalMs?: number }): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    try {
      const lag = await measureLag(deps.admin, deps.groupId, deps.topic);
      for (const [partition, value] of lag) deps.gauge.set(value, { topic: deps.topic, partition });
    } catch (err) {
      deps.logger.debug('lag measurement failed', { err });
    }
    if (!stopped) timer = setTimeout(tick, deps.intervalMs ?? 5_000);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
