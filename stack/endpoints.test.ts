import { describe, expect, it } from 'vitest';
import { bindAddresses, clickhouseEndpoint, formatHostPort, isLocalHost, kafkaEndpoint, parseHostPort } from './endpoints.ts';

describe('parseHostPort', () => {
  it('splits host names, IPv4 and bracketed IPv6', () => {
    expect(parseHostPort('127.0.0.1:9092')).toEqual({ host: '127.0.0.1', port: 9092 });
    expect(parseHostPort(' kafka:19092 ')).toEqual({ host: 'kafka', port: 19092 });
    expect(parseHostPort('[::1]:9092')).toEqual({ host: '::1', port: 9092 });
  });

  it('rejects addresses without a valid port', () => {
    for (const bad of ['127.0.0.1', 'host:', ':9092', 'host:0', 'host:70000', '::1:9092']) {
      expect(() => parseHostPort(bad), bad).toThrow(/not a host:port/);
    }
  });

  it('round-trips through formatHostPort', () => {
    expect(formatHostPort(parseHostPort('[::1]:9092'))).toBe('[::1]:9092');
    expect(formatHostPort(parseHostPort('localhost:1'))).toBe('localhost:1');
  });
});

describe('isLocalHost', () => {
  it('accepts loopback names and addresses only', () => {
    for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) expect(isLocalHost(h), h).toBe(true);
    for (const h of ['kafka', '10.0.0.1', '0.0.0.0', '128.0.0.1', 'localhost.example.com', '::']) expect(isLocalHost(h), h).toBe(false);
  });
});

describe('kafkaEndpoint', () => {
  it('uses the first broker and keeps the full list', () => {
    const e = kafkaEndpoint(['127.0.0.1:9092', 'other:9093']);
    expect(e).toMatchObject({ host: '127.0.0.1', port: 9092 });
    expect(e.all).toHaveLength(2);
  });

  it('fails on an empty list', () => {
    expect(() => kafkaEndpoint([])).toThrow(/empty/);
  });
});

describe('clickhouseEndpoint', () => {
  it('takes the explicit port and strips a trailing slash', () => {
    expect(clickhouseEndpoint('http://127.0.0.1:18123/')).toEqual({ host: '127.0.0.1', port: 18123, url: 'http://127.0.0.1:18123', secure: false });
  });

  it('falls back to the scheme default ports', () => {
    expect(clickhouseEndpoint('http://localhost').port).toBe(8123);
    expect(clickhouseEndpoint('https://ch.example.com').port).toBe(8443);
    expect(clickhouseEndpoint('https://ch.example.com').secure).toBe(true);
  });

  it('unbrackets IPv6 hosts', () => {
    expect(clickhouseEndpoint('http://[::1]:8123').host).toBe('::1');
  });

  it('rejects garbage with a config error', () => {
    expect(() => clickhouseEndpoint('not a url')).toThrow(/CLICKHOUSE_URL/);
  });
});

describe('bindAddresses', () => {
  it('binds both loopbacks for "localhost" and exactly the given IP otherwise', () => {
    expect(bindAddresses('localhost')).toEqual(['127.0.0.1', '::1']);
    expect(bindAddresses('127.0.0.1')).toEqual(['127.0.0.1']);
    expect(bindAddresses('::1')).toEqual(['::1']);
  });
});
