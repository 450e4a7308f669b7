import { databaseHostsMax } from '../engine/limits.ts';

// libpq's multi-host connection string, `postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write`
// (PostgreSQL docs, "Connection Strings" and "target_session_attrs"), read here because node-postgres
// cannot: its parser hands the URL to `new URL()`, which throws on a host list, and it has no
// target_session_attrs (brianc/node-postgres#1470; the pull request adding it, #3643, is not merged).
// No maintained package does it for node-postgres either, so the few lines that split the host list
// are ours; each host becomes an ordinary one-host URL that node-postgres reads as it always has.

/** Which server of the list a client takes (the values of libpq's target_session_attrs that we follow). */
export type TargetSessionAttrs = 'read-write' | 'primary' | 'any';

const targets: readonly TargetSessionAttrs[] = ['read-write', 'primary', 'any'];

export interface HostAddress {
  /** A name or an IPv4 address, or an IPv6 address without its brackets. */
  readonly host: string;
  readonly port: number;
}

export interface DatabaseAddress {
  /** The servers in the order the URL names them: they are tried in this order. */
  readonly hosts: readonly HostAddress[];
  readonly target: TargetSessionAttrs;
  /** True when the URL says target_session_attrs itself (false: libpq's default, `any`). */
  readonly targetNamed: boolean;
  /** The URL of one of the hosts: the same user, password, database and parameters. */
  urlFor(host: HostAddress): string;
}

/** A DATABASE_URL that cannot be read; the message is one line and never repeats the password. */
export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

/** libpq's default port when a host names none. */
const defaultPort = 5432;

/** scheme, user info (up to the last @ before the path), host list, path, query. */
const urlShape = /^(postgres(?:ql)?:\/\/)(?:([^/?#]*)@)?([^/?#@]*)(\/[^?#]*)?(?:\?([^#]*))?$/;

function hostOf(item: string): HostAddress {
  // [v6]:port, [v6], name:port, name
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(item);
  const [host, port] = bracketed === null ? splitHostPort(item) : [bracketed[1]!, bracketed[2]];
  if (host === '') throw new DatabaseUrlError('DATABASE_URL names an empty host in its host list');
  if (port === undefined || port === '') return { host: decodeURIComponent(host), port: defaultPort };
  const n = /^[0-9]{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65_535)) {
    throw new DatabaseUrlError(`DATABASE_URL: the port of host ${host} must be 1-65535, not "${port}"`);
  }
  return { host: decodeURIComponent(host), port: n };
}

function splitHostPort(item: string): [string, string | undefined] {
  const colon = item.lastIndexOf(':');
  return colon < 0 ? [item, undefined] : [item.slice(0, colon), item.slice(colon + 1)];
}

function targetOf(params: URLSearchParams): TargetSessionAttrs | undefined {
  const named = params.get('target_session_attrs');
  if (named === null) return undefined;
  const target = targets.find((t) => t === named);
  if (target === undefined) {
    throw new DatabaseUrlError(`DATABASE_URL: target_session_attrs must be read-write, primary or any, not "${named}"`);
  }
  return target;
}

/**
 * Reads a postgres:// URL with one host, several (libpq's form), or none (node-postgres's default
 * host, or a socket named by `?host=`). Throws DatabaseUrlError with a one-line reason on an empty
 * host in a list, a bad port, too many hosts, or a target_session_attrs other than read-write,
 * primary or any.
 */
export function parseDatabaseUrl(url: string): DatabaseAddress {
  const shape = urlShape.exec(url);
  if (shape === null) throw new DatabaseUrlError('DATABASE_URL must look like postgres://user@host:port/database');
  const [, scheme, userInfo, hostList = '', path = '', query = ''] = shape;
  const items = hostList.split(',');
  if (items.length > databaseHostsMax) {
    throw new DatabaseUrlError(`DATABASE_URL names ${items.length} hosts; at most ${databaseHostsMax} are tried`);
  }
  const hosts = hostList === '' ? [] : items.map(hostOf);
  const params = new URLSearchParams(query);
  const target = targetOf(params);
  if (hosts.length === 0 && target !== undefined) {
    throw new DatabaseUrlError('DATABASE_URL: target_session_attrs needs its hosts named before the path');
  }
  if (hosts.length > 1 && (params.has('host') || params.has('port'))) {
    throw new DatabaseUrlError('DATABASE_URL: with several hosts, name them before the path, not as host= or port=');
  }
  params.delete('target_session_attrs');
  const rest = params.size === 0 ? '' : `?${params.toString()}`;
  const user = userInfo === undefined ? '' : `${userInfo}@`;
  return {
    hosts,
    target: target ?? 'any',
    targetNamed: target !== undefined,
    urlFor: ({ host, port }) => {
      const name = host.includes(':') ? `[${host}]` : encodeURIComponent(host);
      return `${scheme}${user}${name}:${port}${path}${rest}`;
    },
  };
}

/**
 * True when the URL needs a locator: several hosts, or a target_session_attrs to hold a server to.
 * A plain one-host URL goes to node-postgres as it is, and its pool serves queries directly.
 */
export function needsLocator(address: DatabaseAddress): boolean {
  return address.hosts.length > 1 || address.targetNamed;
}

/** How a host is named in logs and messages. */
export const hostName = ({ host, port }: HostAddress): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
