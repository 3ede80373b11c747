/**
 * ClickHouse RowBinary, the input format both 18.16 and current servers read with no parsing of
 * text: each value in the column's own little-endian layout, a String as a LEB128 length and
 * its UTF-8 bytes, a Nullable as one byte (1 = NULL) before the value when there is one.
 *
 * Rows are written into large shared chunks (outside the JavaScript heap) and handed out as
 * views, so a row costs the garbage collector one small object instead of a string per field.
 */

/** Bytes a String of `s` may take at most: UTF-8 spends at most 3 bytes per UTF-16 unit, plus its length prefix. */
export const maxStringBytes = (s: string): number => 3 * s.length + 5;

/** Default size of one chunk rows are written into. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Writes rows one after another. `begin(max)` reserves room for a row of at most `max` bytes
 * (the caller's bound: fixed-width fields plus maxStringBytes of each string), the typed
 * writers append values, and `end()` returns the row's bytes. A row never spans two chunks.
 */
export class RowBinaryWriter {
  private chunk: Buffer;
  private pos = 0;
  private start = 0;

  constructor(private readonly chunkBytes = CHUNK_BYTES) {
    this.chunk = Buffer.allocUnsafe(chunkBytes);
  }

  begin(maxBytes: number): void {
    if (this.chunk.length - this.pos < maxBytes) {
      // The old chunk lives on for as long as rows in it do; this one starts empty.
      this.chunk = Buffer.allocUnsafe(Math.max(this.chunkBytes, maxBytes));
      this.pos = 0;
    }
    this.start = this.pos;
  }

  end(): Buffer {
    return this.chunk.subarray(this.start, this.pos);
  }

  uint8(n: number): void {
    this.chunk[this.pos++] = n;
  }

  uint16(n: number): void {
    this.chunk.writeUInt16LE(n, this.pos);
    this.pos += 2;
  }

  uint32(n: number): void {
    this.chunk.writeUInt32LE(n, this.pos);
    this.pos += 4;
  }

  /** A UInt64 from a safe integer (0 .. 2^53-1): two 32-bit halves. */
  uint64(n: number): void {
    const low = n % 0x1_0000_0000;
    this.chunk.writeUInt32LE(low, this.pos);
    this.chunk.writeUInt32LE((n - low) / 0x1_0000_0000, this.pos + 4);
    this.pos += 8;
  }

  string(s: string): void {
    const chunk = this.chunk;
    const n = s.length;
    // Short ASCII, the usual id or code: copied by hand, one length byte.
    if (n < 128) {
      let i = 0;
      const at = this.pos + 1;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        chunk[at + i] = c;
      }
      if (i === n) {
        chunk[this.pos] = n;
        this.pos = at + n;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, 'utf8');
    let pos = this.pos;
    let v = bytes;
    while (v >= 0x80) {
      chunk[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    chunk[pos++] = v;
    // (An unpaired surrogate would become U+FFFD: the contract refuses strings holding one.)
    this.pos = pos + chunk.write(s, pos, bytes, 'utf8');
  }

  nullableString(s: string | null | undefined): void {
    if (s === null || s === undefined) this.chunk[this.pos++] = 1;
    else {
      this.chunk[this.pos++] = 0;
      this.string(s);
    }
  }

  nullableUint8(n: number | null | undefined): void {
    if (n === null || n === undefined) this.chunk[this.pos++] = 1;
    else {
      this.chunk[this.pos++] = 0;
      this.chunk[this.pos++] = n;
    }
  }
}
