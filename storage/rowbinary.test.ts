import { describe, expect, test } from 'vitest';
import { RowBinaryWriter, maxStringBytes } from './rowbinary.ts';

/** One row written by `fill` into a fresh writer, as bytes. */
function row(fill: (w: RowBinaryWriter) => void, maxBytes = 1024, chunkBytes?: number): Buffer {
  const w = new RowBinaryWriter(chunkBytes);
  w.begin(maxBytes);
  fill(w);
  return Buffer.from(w.end());
}

describe('RowBinary values', () => {
  test.each([
    ['empty', '', [0x00]],
    ['ASCII', 'ab', [0x02, 0x61, 0x62]],
    ['two-byte UTF-8', 'é', [0x02, 0xc3, 0xa9]],
    ['CJK', '支', [0x03, 0xe6, 0x94, 0xaf]],
    ['emoji (surrogate pair)', '😀', [0x04, 0xf0, 0x9f, 0x98, 0x80]],
    ['lone surrogate becomes U+FFFD', '\ud800', [0x03, 0xef, 0xbf, 0xbd]],
    ['NUL and control bytes kept', 'a\u0000\n', [0x03, 0x61, 0x00, 0x0a]],
  ])('String: %s', (_name, value, bytes) => {
    expect([...row((w) => w.string(value))]).toEqual(bytes);
  });

  test.each([
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [300, [0xac, 0x02]],
    [16_384, [0x80, 0x80, 0x01]],
  ])('a String of %i bytes has a LEB128 length', (n, prefix) => {
    const ascii = row((w) => w.string('x'.repeat(n)), n + 10);
    expect([...ascii.subarray(0, prefix.length)]).toEqual(prefix);
    expect(ascii.length).toBe(prefix.length + n);
    // The same length reached with multi-byte characters (the non-ASCII path).
    const wide = 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2);
    const encoded = row((w) => w.string(wide), maxStringBytes(wide));
    expect([...encoded.subarray(0, prefix.length)]).toEqual(prefix);
    expect(encoded.subarray(prefix.length).toString('utf8')).toBe(wide);
  });

  test.each([
    [0, '0000000000000000'],
    [1, '0100000000000000'],
    [2 ** 32 - 1, 'ffffffff00000000'],
    [2 ** 32, '0000000001000000'],
    [1e15, '0080c6a47e8d0300'],
    [Number.MAX_SAFE_INTEGER, 'ffffffffffff1f00'],
  ])('UInt64 %d is little-endian', (n, hex) => {
    const bytes = row((w) => w.uint64(n));
    expect(bytes.toString('hex')).toBe(hex);
    expect(bytes.readBigUInt64LE()).toBe(BigInt(n));
  });

  test('fixed widths and Nullable flags', () => {
    const bytes = row((w) => {
      w.uint8(200);
      w.uint16(65_535);
      w.uint32(4_102_444_799);
      w.nullableUint8(undefined);
      w.nullableUint8(100);
      w.nullableString(null);
      w.nullableString('z');
    });
    expect(bytes.toString('hex')).toBe('c8' + 'ffff' + 'ff5686f4' + '01' + '0064' + '01' + '00017a');
  });

  test('maxStringBytes bounds the encoded size of any string', () => {
    for (const s of ['', 'x', '\u07ff', '\uffff', '😀😀', '\ud800\ud800', 'a'.repeat(200), '支'.repeat(100)]) {
      expect(row((w) => w.string(s), maxStringBytes(s)).length).toBeLessThanOrEqual(maxStringBytes(s));
    }
  });
});

describe('RowBinaryWriter chunks', () => {
  test('rows are views into shared chunks; a row that does not fit starts a new chunk and earlier rows stay intact', () => {
    const w = new RowBinaryWriter(64);
    const rows: Buffer[] = [];
    for (const s of ['aaaa', 'bbbbbb', 'cccccccc', 'a row longer than what is left of the chunk, and than a chunk']) {
      w.begin(maxStringBytes(s));
      w.string(s);
      rows.push(w.end());
    }
    expect(rows.map((r) => r.subarray(1).toString('utf8'))).toEqual([
      'aaaa',
      'bbbbbb',
      'cccccccc',
      'a row longer than what is left of the chunk, and than a chunk',
    ]);
    // The first two share a chunk, back to back.
    expect(rows[0]!.buffer).toBe(rows[1]!.buffer);
    expect(rows[1]!.byteOffset).toBe(rows[0]!.byteOffset + rows[0]!.length);
  });
});
