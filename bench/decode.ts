// Per-event CPU cost of the ingest hot path without Kafka or ClickHouse: validation against the
// contract (JSON.parse + ajv + checks) and building the ClickHouse row, as the RowBinary row
// ingest sends and as the JSONEachRow line it falls back to. Run:
//   npm run bench:decode
import os from 'node:os';
import { decodeEvent } from '../contract/index.ts';
import { encodeEventRow, lineOf, toPendingRow } from '../ingest/records.ts';
import { RowBinaryWriter } from '../storage/rowbinary.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';

const items = [...createTrafficGenerator({ seed: 5, rate: 20_000, durationMs: 5_000, startMs: Date.now() - 3_600_000 })].filter((i) => i.kind !== 'invalid');
const bytes = items.reduce((a, i) => a + i.value.length, 0) / items.length;
const keyBytes = items.reduce((a, i) => a + Buffer.byteLength(i.key), 0) / items.length;
// What ingest holds per event besides its objects: the message as received (key and value) and its RowBinary row.
const rowWriter = new RowBinaryWriter();
const rowBytes =
  items.reduce((a, i) => {
    const r = decodeEvent(i.value, 65536);
    return a + (r.ok ? encodeEventRow(rowWriter, r.value, 0, 0).bytes.length : 0);
  }, 0) / items.length;
process.stdout.write(
  `${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}; ${items.length} simulator events, ${bytes.toFixed(0)} bytes on average ` +
    `(key ${keyBytes.toFixed(0)}, RowBinary row ${rowBytes.toFixed(0)}: ${(bytes + keyBytes + rowBytes).toFixed(0)} bytes held per buffered event)\n`,
);
const perEvent = (fn: () => void) => {
  const t = performance.now();
  fn();
  return ((performance.now() - t) / items.length) * 1000;
};
for (let round = 1; round <= 5; round++) {
  const parse = perEvent(() => items.forEach((i) => JSON.parse(i.value.toString('utf8'))));
  const decode = perEvent(() => items.forEach((i) => decodeEvent(i.value, 65_536)));
  const json = perEvent(() =>
    items.forEach((i) => {
      const r = decodeEvent(i.value, 65_536);
      if (r.ok) lineOf(toPendingRow(r.value, 0, 0), '2026-11-25 10:00:00');
    }),
  );
  const writer = new RowBinaryWriter();
  const binary = perEvent(() =>
    items.forEach((i) => {
      const r = decodeEvent(i.value, 65_536);
      if (r.ok) encodeEventRow(writer, r.value, 0, 0);
    }),
  );
  process.stdout.write(
    `round ${round}: JSON.parse ${parse.toFixed(2)} µs/event, validate ${decode.toFixed(2)} µs/event, ` +
      `validate + RowBinary row ${binary.toFixed(2)} µs/event (${Math.round(1e6 / binary).toLocaleString('en-US')} events/s on one core), ` +
      `validate + JSONEachRow line ${json.toFixed(2)} µs/event\n`,
  );
}
