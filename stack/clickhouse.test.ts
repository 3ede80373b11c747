import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clickhouseConfigXml, clickhousePaths, clickhouseUsersXml, nativePort, xmlEscape } from './clickhouse.ts';

const paths = clickhousePaths('/repo');
const tag = (xml: string, name: string) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]);

describe('clickhouseConfigXml', () => {
  const xml = clickhouseConfigXml({ http: { host: '127.0.0.1', port: 18123 }, nativePort: 19000, paths });

  it('uses the <yandex> root that ClickHouse 18.16 requires', () => {
    expect(xml).toMatch(/^<\?xml version="1\.0"\?>\n/);
    expect(xml.trim()).toMatch(/<yandex>[\s\S]*<\/yandex>$/);
  });

  it('listens on the configured address and ports only', () => {
    expect(tag(xml, 'listen_host')).toEqual(['127.0.0.1']);
    expect(tag(xml, 'http_port')).toEqual(['18123']);
    expect(tag(xml, 'tcp_port')).toEqual(['19000']);
    // No replication here: an interserver port would only open another socket.
    expect(xml).not.toContain('interserver_http_port');
  });

  it('keeps every path under .stack/clickhouse with the trailing slash ClickHouse needs', () => {
    for (const name of ['path', 'tmp_path', 'user_files_path', 'format_schema_path']) {
      const [value] = tag(xml, name);
      expect(value, name).toMatch(/^\/repo\/\.stack\/clickhouse\/.+\/$/);
    }
    expect(tag(xml, 'log')).toEqual(['/repo/.stack/clickhouse/log/clickhouse-server.log']);
    expect(tag(xml, 'errorlog')).toEqual(['/repo/.stack/clickhouse/log/clickhouse-server.err.log']);
  });

  it('keeps caches small and avoids settings 18.16 does not know', () => {
    expect(Number(tag(xml, 'mark_cache_size')[0])).toBeLessThanOrEqual(512 * 1024 * 1024);
    // Newer-only keys are silently ignored by 18.16, so they would look applied but do nothing.
    expect(xml).not.toMatch(/max_server_memory_usage|<clickhouse>/);
  });

  it('binds both loopbacks for localhost, tolerating a missing IPv6', () => {
    const local = clickhouseConfigXml({ http: { host: 'localhost', port: 8123 }, nativePort: 9000, paths });
    expect(tag(local, 'listen_host')).toEqual(['127.0.0.1', '::1']);
    expect(tag(local, 'listen_try')).toEqual(['1']);
  });

  it('escapes paths', () => {
    const odd = clickhouseConfigXml({ http: { host: '127.0.0.1', port: 8123 }, nativePort: 9000, paths: clickhousePaths('/a&b') });
    expect(odd).toContain('<path>/a&amp;b/.stack/clickhouse/data/</path>');
  });
});

describe('clickhouseUsersXml', () => {
  it('creates a passwordless default user reachable from loopback only', () => {
    const xml = clickhouseUsersXml({ user: 'default', password: '' });
    expect(xml).toContain('<default>\n            <password></password>');
    expect(tag(xml, 'ip')).toEqual(['127.0.0.1', '::1']);
    expect(xml).not.toContain('::/0');
  });

  it('stores a configured password as SHA-256, never in clear', () => {
    const xml = clickhouseUsersXml({ user: 'default', password: 's3cret<&>' });
    expect(xml).not.toContain('s3cret');
    expect(tag(xml, 'password_sha256_hex')).toEqual([createHash('sha256').update('s3cret<&>').digest('hex')]);
  });

  it('adds a non-default configured user next to default', () => {
    const xml = clickhouseUsersXml({ user: 'paysentinel', password: 'pw' });
    expect(xml).toMatch(/<users>\s*<default>[\s\S]*<\/default>\s*<paysentinel>[\s\S]*<\/paysentinel>\s*<\/users>/);
  });

  it('rejects user names that cannot be XML element names', () => {
    expect(() => clickhouseUsersXml({ user: 'a b', password: '' })).toThrow(/CLICKHOUSE_USER/);
    expect(() => clickhouseUsersXml({ user: '1abc', password: '' })).toThrow(/CLICKHOUSE_USER/);
  });
});

describe('nativePort', () => {
  it('defaults to 9000 and reads CLICKHOUSE_NATIVE_PORT', () => {
    expect(nativePort({})).toBe(9000);
    expect(nativePort({ CLICKHOUSE_NATIVE_PORT: '' })).toBe(9000);
    expect(nativePort({ CLICKHOUSE_NATIVE_PORT: '19000' })).toBe(19000);
  });

  it('rejects non-ports with the variable name', () => {
    for (const bad of ['abc', '0', '70000', '-1', '90.5']) {
      expect(() => nativePort({ CLICKHOUSE_NATIVE_PORT: bad }), bad).toThrow(/CLICKHOUSE_NATIVE_PORT/);
    }
  });
});

describe('xmlEscape', () => {
  it('escapes the five XML specials', () => {
    expect(xmlEscape(`<a href="x">&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;');
  });
});
