/**
 * Small deterministic randomness for the simulator. Math.random is never used: a run must
 * be repeatable byte for byte from its seed, so every draw comes from a seeded stream.
 */

/** A stream of uniform floats in [0, 1). */
export type Rng = () => number;

/** Mixes integers into one well-spread 32-bit unsigned hash (murmur3 finaliser per step). */
export function hash32(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    // Split large integers (epoch ms) so no bits above 2^32 are lost.
    const lo = part >>> 0;
    const hi = Math.floor(part / 2 ** 32) >>> 0;
    for (const word of [lo, hi]) {
      h = Math.imul(h ^ word, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}

/** sfc32: fast, passes PractRand for our volumes, seeded from four hashed words. */
export function createRng(...seedParts: number[]): Rng {
  let a = hash32(...seedParts, 1);
  let b = hash32(...seedParts, 2);
  let c = hash32(...seedParts, 3);
  let d = hash32(...seedParts, 4);
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const r = (t + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  // Discard the first outputs: sfc32 needs a few rounds to decorrelate similar seeds.
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** Uniform integer in [min, max] inclusive. */
export const int = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));

/** Uniform float in [min, max). */
export const uniform = (rng: Rng, min: number, max: number): number => min + rng() * (max - min);

/** Log-uniform float in [min, max): many short values, a tail of long ones (delays). */
export const logUniform = (rng: Rng, min: number, max: number): number => Math.exp(uniform(rng, Math.log(min), Math.log(max)));

/** Standard normal draw (Box-Muller). */
export function normal(rng: Rng): number {
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Picks one element uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)] as T;
}

/** Picks a key by weight; weights need not sum to 1. */
export function weighted<T extends string>(rng: Rng, weights: Readonly<Record<T, number>>): T {
  const entries = Object.entries(weights) as [T, number][];
  let total = 0;
  for (const [, w] of entries) total += w;
  let r = rng() * total;
  for (const [key, w] of entries) {
    r -= w;
    if (r < 0) return key;
  }
  return entries[entries.length - 1]![0];
}

/** Digits drawn from the stream, e.g. for transaction serial numbers. */
export function digits(rng: Rng, count: number): string {
  // Eight digits per draw: serial numbers are generated for almost every event.
  let out = '';
  while (out.length < count) out += String(Math.floor(rng() * 1e8)).padStart(8, '0');
  return out.slice(0, count);
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Base-62 characters drawn from the stream. */
export function base62(rng: Rng, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += BASE62[Math.floor(rng() * 62)];
  return out;
}

/** A UUID v4-shaped id from the stream (deterministic, unlike crypto.randomUUID). */
export function uuid(rng: Rng): string {
  const hex = (n: number) =>
    Math.floor(n * 4294967296)
      .toString(16)
      .padStart(8, '0');
  const h = hex(rng()) + hex(rng()) + hex(rng()) + hex(rng());
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
