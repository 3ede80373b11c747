/**
 * Exact money: decimal text from a statement becomes integer minor units by the currency's
 * ISO 4217 exponent (JPY 0, CNY 2, KWD 3). No float ever holds an amount and nothing is rounded:
 * a value the currency cannot represent (10.005 USD) is an error, not a guess.
 */

// ISO 4217 active codes whose exponent is not 2, and every code with exponent 2 we accept.
const EXPONENT_0 = 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF';
const EXPONENT_3 = 'BHD IQD JOD KWD LYD OMR TND';
const EXPONENT_4 = 'CLF UYW';
const EXPONENT_2 =
  'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK ' +
  'DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT ' +
  'LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN ' +
  'QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS ' +
  'VES WST XCD YER ZAR ZMW ZWG';

const exponents: ReadonlyMap<string, number> = new Map(
  (
    [
      [EXPONENT_0, 0],
      [EXPONENT_2, 2],
      [EXPONENT_3, 3],
      [EXPONENT_4, 4],
    ] as const
  ).flatMap(([codes, e]) => codes.split(' ').map((c) => [c, e] as const)),
);

/** The ISO 4217 exponent of `currency` (upper case), or undefined for a code we do not know. */
export const currencyExponent = (currency: string): number | undefined => exponents.get(currency);

/** Largest amount accepted, in minor units: the event contract's bound (10^15). */
export const MAX_MINOR = 1_000_000_000_000_000n;

/** An exact decimal: value = units / 10^scale. */
export interface Decimal {
  units: bigint;
  scale: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

// Plain decimal notation only: optional minus, digits, optional fraction. No exponent (1e3), no
// thousands separators or decimal comma (12,5), no leading plus, no bare ".5".
const DECIMAL = /^(-?)(\d{1,18})(?:\.(\d{1,18}))?$/;

/** Parses plain decimal text exactly. */
export function parseDecimal(text: string): Parsed<Decimal> {
  const m = DECIMAL.exec(text);
  if (!m) return { ok: false, reason: `${JSON.stringify(text)} is not a plain decimal number (expected e.g. 12.50)` };
  const fraction = m[3] ?? '';
  const units = BigInt(m[2]! + fraction) * (m[1] === '-' ? -1n : 1n);
  return { ok: true, value: { units, scale: fraction.length } };
}

/** The same value at another scale, when that is exact (12.50 at scale 1 is 12.5; 12.55 is not). */
export function rescale(d: Decimal, scale: number): Decimal | undefined {
  if (scale >= d.scale) return { units: d.units * 10n ** BigInt(scale - d.scale), scale };
  const factor = 10n ** BigInt(d.scale - scale);
  return d.units % factor === 0n ? { units: d.units / factor, scale } : undefined;
}

/**
 * Decimal text in major units -> integer minor units of `currency`. Refuses unknown currencies,
 * values with more precision than the currency has, and amounts beyond ±10^15 minor units.
 */
export function toMinorUnits(text: string, currency: string): Parsed<number> {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) return { ok: false, reason: `unknown currency ${JSON.stringify(currency)} (expected an ISO 4217 code such as CNY, USD, JPY)` };
  const d = parseDecimal(text);
  if (!d.ok) return d;
  const exact = rescale(d.value, exponent);
  if (!exact)
    return { ok: false, reason: `${text} ${currency} cannot be represented exactly: ${currency} has ${exponent} decimal place${exponent === 1 ? '' : 's'}` };
  if (exact.units > MAX_MINOR || exact.units < -MAX_MINOR) return { ok: false, reason: `${text} ${currency} is out of range (at most 10^15 minor units)` };
  return { ok: true, value: Number(exact.units) };
}

/** Formats minor units back as major-unit text (1250, CNY -> "12.50"); for messages and statements we write. */
export function formatMinor(minor: number | bigint, currency: string): string {
  const exponent = currencyExponent(currency) ?? 2;
  const v = BigInt(minor);
  const neg = v < 0n;
  const digits = (neg ? -v : v).toString().padStart(exponent + 1, '0');
  const text = exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
  return neg ? `-${text}` : text;
}

/** Exact sum of decimals at the largest scale among them. */
export function sumDecimals(values: readonly Decimal[]): Decimal {
  const scale = values.reduce((s, d) => Math.max(s, d.scale), 0);
  return { units: values.reduce((sum, d) => sum + rescale(d, scale)!.units, 0n), scale };
}

/** True when two decimals are the same number (1.50 and 1.5 are equal). */
export function decimalsEqual(a: Decimal, b: Decimal): boolean {
  const scale = Math.max(a.scale, b.scale);
  return rescale(a, scale)!.units === rescale(b, scale)!.units;
}

/** Decimal back to plain text ("-0.0594"), for messages. */
export function formatDecimal(d: Decimal): string {
  const neg = d.units < 0n;
  const digits = (neg ? -d.units : d.units).toString().padStart(d.scale + 1, '0');
  const text = d.scale === 0 ? digits : `${digits.slice(0, -d.scale)}.${digits.slice(-d.scale)}`;
  return neg ? `-${text}` : text;
}
