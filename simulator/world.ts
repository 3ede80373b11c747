import type { EventSource, EventStatus, EventType, PaymentEvent } from '../contract/index.ts';
import { base62, digits, hash32, type Rng, uuid, weighted } from './random.ts';

/**
 * The simulated world: merchants, channels, users with their usual device and IP, and the
 * id formats of each payment platform. Users are derived from their index by hashing, so a
 * population of tens of thousands costs nothing until a user actually pays.
 */

export const channelWeights = { alipay: 46, wechat_pay: 37, card: 10, bank_transfer: 7 } as const;
export type Channel = keyof typeof channelWeights;

/** About twenty merchants with a long-tailed share of the traffic, as on a real platform. */
export const merchants: readonly { id: string; weight: number }[] = [
  'mch_100231',
  'mch_100487',
  'mch_100562',
  'mch_100918',
  'mch_101044',
  'mch_101379',
  'mch_101605',
  'mch_101822',
  'mch_102150',
  'mch_102397',
  'mch_102671',
  'mch_102804',
  'mch_103129',
  'mch_103356',
  'mch_103590',
  'mch_103847',
  'mch_104012',
  'mch_104268',
  'mch_104533',
  'mch_104790',
].map((id, i) => ({ id, weight: 1 / (i + 1) ** 0.9 }));

/** Broadband and mobile /16 blocks of large consumer ISPs: where ordinary customers come from. */
const residentialPrefixes = [
  '36.110',
  '58.33',
  '112.97',
  '117.136',
  '183.14',
  '220.181',
  '101.86',
  '123.125',
  '14.23',
  '113.87',
  '116.228',
  '124.64',
  '180.160',
  '202.96',
  '218.85',
  '222.73',
  '125.33',
  '59.172',
  '111.206',
  '121.35',
];
/** Blocks used only by injected scenarios, so a scenario IP never collides with a baseline one. */
const scenarioResidentialPrefixes = ['171.83', '175.9', '39.144'];
/** Hosting ranges: card testers run from rented servers, not home connections. */
const hostingPrefixes = ['103.151', '45.134', '194.26'];

/** One customer: stable identity, usual device, usual network, favourite payment method. */
export interface User {
  index: number;
  userId: string;
  deviceId: string;
  ip: string;
  channel: Channel;
}

function ipv4(prefix: string, h: number): string {
  return `${prefix}.${(h >>> 8) & 0xff}.${2 + ((h & 0xff) % 252)}`;
}

function hex32(key: number, index: number, salt: number): string {
  let out = '';
  for (let i = 0; i < 4; i++) out += hash32(key, index, salt, i).toString(16).padStart(8, '0');
  return out;
}

/**
 * Derives user `index` from the run key. `natShare` of users sit behind a NAT shared with a
 * couple of others (same office, same campus): realistic, and light enough to stay benign.
 */
export function deriveUser(key: number, index: number, options: { scenario?: boolean } = {}): User {
  const h = hash32(key, index, 0x75);
  const userId = `u_${100 + (h % 900)}${String(index).padStart(7, '0')}`;
  const deviceId = hex32(key, index, 0xde);
  let ip: string;
  if (options.scenario) {
    ip = ipv4(scenarioResidentialPrefixes[h % scenarioResidentialPrefixes.length]!, hash32(key, index, 0x1f));
  } else if (h % 100 < 5) {
    // A few customers are on IPv6 (mobile networks hand these out widely).
    const g = hash32(key, index, 0x66);
    ip = `240e:${(g >>> 16).toString(16)}:${(g & 0xffff).toString(16)}:${(h & 0xfff).toString(16)}::${(index % 0xfff0).toString(16)}`;
  } else if (h % 100 < 13) {
    // NAT group of about three users sharing one address.
    const group = Math.floor(hash32(key, index, 0x9a) % 1_000_000);
    ip = ipv4(residentialPrefixes[group % residentialPrefixes.length]!, hash32(key, group, 0x4e));
  } else {
    ip = ipv4(residentialPrefixes[hash32(key, index, 0x9b) % residentialPrefixes.length]!, hash32(key, index, 0x1f));
  }
  const c = (hash32(key, index, 0xc4) % 1000) / 1000;
  const channel: Channel = c < 0.46 ? 'alipay' : c < 0.83 ? 'wechat_pay' : c < 0.93 ? 'card' : 'bank_transfer';
  return { index, userId, deviceId, ip, channel };
}

/** An address in a hosting range (card testing). */
export function hostingIp(rng: Rng): string {
  return ipv4(hostingPrefixes[Math.floor(rng() * hostingPrefixes.length)]!, Math.floor(rng() * 2 ** 32));
}

/** A device fingerprint drawn from a stream (emulators and scenario devices). */
export function deviceFromRng(rng: Rng): string {
  let out = '';
  for (let i = 0; i < 4; i++)
    out += Math.floor(rng() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  return out;
}

/** Everything of an event except its id and time, fixed when the attempt is planned. */
export interface EventDraft {
  type: EventType;
  status: EventStatus;
  order_id: string;
  attempt?: number;
  transaction_id?: string;
  amount_minor: number;
  currency: string;
  channel: string;
  merchant_id: string;
  user_id?: string;
  device_id?: string;
  ip?: string;
  failure_code?: string;
  source?: EventSource;
}

/** Builds the event with a stable field order, so equal inputs serialise to equal bytes. */
export function toEvent(eventId: string, occurredAtMs: number, d: EventDraft): PaymentEvent {
  const e: Record<string, unknown> = {
    event_id: eventId,
    occurred_at: new Date(occurredAtMs).toISOString(),
    type: d.type,
    status: d.status,
    order_id: d.order_id,
  };
  if (d.attempt !== undefined) e.attempt = d.attempt;
  if (d.transaction_id !== undefined) e.transaction_id = d.transaction_id;
  e.amount_minor = d.amount_minor;
  e.currency = d.currency;
  e.channel = d.channel;
  e.merchant_id = d.merchant_id;
  if (d.user_id !== undefined) e.user_id = d.user_id;
  if (d.device_id !== undefined) e.device_id = d.device_id;
  if (d.ip !== undefined) e.ip = d.ip;
  if (d.failure_code !== undefined) e.failure_code = d.failure_code;
  if (d.source !== undefined) e.source = d.source;
  return e as PaymentEvent;
}

/** Id factory for one run: unique across runs because the run tag mixes seed and start time. */
export interface Ids {
  eventId(): string;
  orderId(): string;
  transactionId(channel: string): string;
}

export function createIds(rng: Rng, startMs: number, runTag: string): Ids {
  const day = new Date(startMs).toISOString().slice(0, 10).replace(/-/g, '');
  let orderSeq = 0;
  return {
    eventId: () => uuid(rng),
    // Merchant order numbers: date, run tag, sequence (unique without coordination).
    orderId: () => `${day}${runTag}${String(++orderSeq).padStart(8, '0')}`,
    transactionId: (channel) => {
      switch (channel) {
        case 'alipay':
          return `${day}2200${digits(rng, 16)}`;
        case 'wechat_pay':
          return `42000${digits(rng, 5)}${day}${digits(rng, 10)}`;
        case 'card':
          return `ch_${base62(rng, 24)}`;
        default:
          return `BT${day}${digits(rng, 12)}`;
      }
    },
  };
}

/** Run tag: four base-36 characters from seed and start time. */
export function runTagFor(seed: number, startMs: number): string {
  return hash32(seed, startMs, 0x7a).toString(36).toUpperCase().padStart(4, '0').slice(-4);
}

/** Log-normal order amount in fen with the price endings shops actually use. */
export function orderAmount(rng: Rng, channel: string, gaussian: number): number {
  const median = channel === 'bank_transfer' ? 42_000 : 6_800;
  let fen = Math.round(median * Math.exp(1.05 * gaussian));
  fen = Math.min(5_000_000, Math.max(100, fen));
  const ending = rng();
  if (ending < 0.45) return Math.max(100, Math.round(fen / 100) * 100);
  if (ending < 0.65) return Math.max(99, Math.floor(fen / 100) * 100 - 1);
  if (ending < 0.75) return Math.floor(fen / 100) * 100 + 90;
  return fen;
}

/** Mostly CNY; card payments include some cross-border currencies. */
export function currencyFor(rng: Rng, channel: string): string {
  if (channel !== 'card') return 'CNY';
  return weighted(rng, { CNY: 78, USD: 10, HKD: 8, EUR: 4 });
}
