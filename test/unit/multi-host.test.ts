import { describe, expect, it } from 'vitest';
import { databaseHostsMax } from '../../src/engine/limits.ts';
import { DatabaseUrlError, needsLocator, parseDatabaseUrl } from '../../src/persistence/multi-host.ts';
import { movedReason } from '../../src/persistence/primary-search.ts';

// DATABASE_URL in libpq's multi-host form, read by hand because node-postgres cannot
// (src/persistence/multi-host.ts), and which failed queries make the locator look for the primary.

const reason = (url: string) => {
  try {
    parseDatabaseUrl(url);
    return null;
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseUrlError);
    return (error as Error).message;
  }
};

describe('DATABASE_URL with several hosts', () => {
  it('names each host in order, each with its port, and the server to take', () => {
    const url = 'postgres://app:secret@10.0.0.1:6001,db-2.internal:6002/shop?target_session_attrs=read-write';
    const address = parseDatabaseUrl(url);
    expect(address.hosts).toEqual([
      { host: '10.0.0.1', port: 6001 },
      { host: 'db-2.internal', port: 6002 },
    ]);
    expect(address.target).toBe('read-write');
    expect(needsLocator(address)).toBe(true);
  });

  it('gives each host a one-host URL node-postgres reads: same user, password, database and parameters', () => {
    const address = parseDatabaseUrl(
      'postgresql://app:p%40ss@a:6001,b:6002/shop?sslmode=disable&target_session_attrs=primary&application_name=x',
    );
    expect(address.urlFor(address.hosts[1]!)).toBe(
      'postgresql://app:p%40ss@b:6002/shop?sslmode=disable&application_name=x',
    );
    expect(address.target).toBe('primary');
  });

  it('takes libpq defaults: port 5432 when a host names none, any server when target_session_attrs is absent', () => {
    const address = parseDatabaseUrl('postgres://u@a,b:6002/db');
    expect(address.hosts).toEqual([
      { host: 'a', port: 5432 },
      { host: 'b', port: 6002 },
    ]);
    expect(address.target).toBe('any');
  });

  it('reads IPv6 hosts in brackets and writes them back in brackets', () => {
    const address = parseDatabaseUrl('postgres://u@[::1]:6001,[fd00::2]/db?target_session_attrs=any');
    expect(address.hosts).toEqual([
      { host: '::1', port: 6001 },
      { host: 'fd00::2', port: 5432 },
    ]);
    expect(address.urlFor(address.hosts[0]!)).toBe('postgres://u@[::1]:6001/db');
  });

  it('leaves a plain one-host URL to node-postgres: no locator between the service and its pool', () => {
    expect(needsLocator(parseDatabaseUrl('postgres://u:p@127.0.0.1:5432/db'))).toBe(false);
    expect(needsLocator(parseDatabaseUrl('postgres://u:p@localhost:5432/db?host=%2Ftmp%2Fpg'))).toBe(false);
    expect(needsLocator(parseDatabaseUrl('postgres:///db'))).toBe(false);
  });

  it('follows one host that names target_session_attrs (a managed service failover endpoint)', () => {
    expect(needsLocator(parseDatabaseUrl('postgres://u@db.example:5432/db?target_session_attrs=read-write'))).toBe(
      true,
    );
  });

  it.each([
    ['postgres://u@a:6001,b:x/db', 'DATABASE_URL: the port of host b must be 1-65535, not "x"'],
    ['postgres://u@a:6001,b:70000/db', 'DATABASE_URL: the port of host b must be 1-65535, not "70000"'],
    ['postgres://u@a,,b/db', 'DATABASE_URL names an empty host in its host list'],
    [
      'postgres://u@a,b/db?target_session_attrs=standby',
      'DATABASE_URL: target_session_attrs must be read-write, primary or any, not "standby"',
    ],
    [
      'postgres://u@a,b/db?host=c',
      'DATABASE_URL: with several hosts, name them before the path, not as host= or port=',
    ],
    [
      'postgres:///db?host=%2Ftmp&target_session_attrs=read-write',
      'DATABASE_URL: target_session_attrs needs its hosts named before the path',
    ],
    ['mysql://u@a/db', 'DATABASE_URL must look like postgres://user@host:port/database'],
  ])('refuses %s with one line saying what is wrong', (url, message) => {
    expect(reason(url)).toBe(message);
  });

  it(`refuses more than ${databaseHostsMax} hosts: every search probes each of them`, () => {
    const hosts = Array.from({ length: databaseHostsMax + 1 }, (_, i) => `h${i}:5432`).join(',');
    expect(reason(`postgres://u@${hosts}/db`)).toMatch(/at most 16 are tried/);
  });

  it('never repeats the password in a refusal', () => {
    expect(reason('postgres://app:hunter2@a:1,b:bad/db')).not.toContain('hunter2');
  });
});

describe('which failed queries send the locator looking for the primary', () => {
  it.each([
    ['25006', 'a write refused as read-only (a demoted primary, a standby)'],
    ['57P01', 'the server shutting down (admin_shutdown)'],
    ['57P03', 'the server starting up or in recovery (cannot_connect_now)'],
    ['08006', 'a connection failure'],
    ['ECONNREFUSED', 'a refused connection'],
    [undefined, 'a client-side timeout or a lost connection'],
  ])('%s: %s', (code, _what) => {
    expect(movedReason(Object.assign(new Error('x'), { code }))).not.toBeNull();
  });

  it.each([
    ['23505', 'a unique violation'],
    ['57014', 'a statement timeout'],
    ['SV409', "the commit function's conflict"],
  ])('%s (%s) says nothing of the kind: the server answered', (code, _what) => {
    expect(movedReason(Object.assign(new Error('x'), { code }))).toBeNull();
  });
});
