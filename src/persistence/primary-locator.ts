import type pg from 'pg';
import { assert } from '../engine/errors.ts';
import { createPool, type DatabasePool, type PoolSettings } from './database.ts';
import { hostName, needsLocator, parseDatabaseUrl, type DatabaseAddress, type HostAddress } from './multi-host.ts';
import { locate, movedReason, notFound, type SearchOptions } from './primary-search.ts';

// Following the primary of a multi-host DATABASE_URL (libpq's target_session_attrs, which
// node-postgres does not have: see multi-host.ts). The pool of the primary serves every query. A
// query that fails in a way that says its server may no longer be the primary (the connection lost
// or timed out, a write refused as read-only, the server shutting down or starting up) starts one
// search in the background (primary-search.ts); if another host is now the primary, a pool for it
// takes over and the old one is ended, without a restart. The failed query itself was answered 503
// like any storage failure: a commit in doubt is resolved by its keyed retry (G2). Queries sent
// during the search still go to the old pool and fail fast or within their timeouts.

/** What the locator did, for the service's log. */
export type LocatorEvent =
  | { readonly type: 'searching'; readonly from: string; readonly reason: string }
  | { readonly type: 'moved'; readonly from: string; readonly to: string; readonly searchMs: number }
  | { readonly type: 'stayed'; readonly host: string; readonly searchMs: number }
  | { readonly type: 'not-found'; readonly rounds: number; readonly reasons: readonly string[] };

/** The pool settings but the connection string, which the locator makes per host. */
export type HostPoolSettings = Omit<PoolSettings, 'connectionString'>;

interface Current {
  readonly host: HostAddress;
  readonly pool: pg.Pool;
}

/** pg.Pool's query seen through its promise forms, whatever the arguments. */
interface PromiseQueries {
  query(...args: unknown[]): Promise<unknown>;
}

const sameHost = (a: HostAddress, b: HostAddress) => a.host === b.host && a.port === b.port;

/** A DatabasePool over whichever host of the URL is the primary now. */
export class PrimaryLocator implements DatabasePool {
  private current: Current;
  private searching: Promise<void> | undefined;
  private ended = false;

  private constructor(
    private readonly address: DatabaseAddress,
    private readonly settings: HostPoolSettings,
    private readonly onEvent: (event: LocatorEvent) => void,
    private readonly onIdleError: (error: Error) => void,
    host: HostAddress,
  ) {
    this.current = { host, pool: this.poolFor(host) };
  }

  /** Finds the primary (one search; NoPrimaryError when none) and opens its pool. */
  static async start(
    address: DatabaseAddress,
    settings: HostPoolSettings,
    onEvent: (event: LocatorEvent) => void,
    onIdleError: (error: Error) => void,
    options: SearchOptions = {},
  ): Promise<PrimaryLocator> {
    const search = await locate(address, options);
    if (search.kind !== 'found') throw notFound(address, search);
    return new PrimaryLocator(address, settings, onEvent, onIdleError, search.host);
  }

  /** The one-host URL of the current primary. */
  get url(): string {
    return this.address.urlFor(this.current.host);
  }

  /** The host serving queries now, as logs name it. */
  get hostName(): string {
    return hostName(this.current.host);
  }

  /**
   * pg.Pool's query on the current primary's pool. Its promise forms only: a failure must be seen
   * here before the caller gets it. One function call more than a pg.Pool, no round trip.
   */
  readonly query = ((...args: unknown[]) => {
    assert(typeof args.at(-1) !== 'function', 'the locator answers queries with promises, not callbacks');
    const { pool } = this.current;
    return (pool as unknown as PromiseQueries).query(...args).catch((error: unknown) => {
      this.failed(pool, error);
      throw error;
    });
  }) as unknown as pg.Pool['query'];

  /** A connection of the current primary's pool, for a transaction; failing to get one may mean a move. */
  readonly connect = (() => {
    const { pool } = this.current;
    return pool.connect().catch((error: unknown) => {
      this.failed(pool, error);
      throw error;
    });
  }) as unknown as pg.Pool['connect'];

  /** Ends the current pool; a search under way opens none after this. */
  async end(): Promise<void> {
    this.ended = true;
    await this.current.pool.end();
  }

  private poolFor(host: HostAddress): pg.Pool {
    const pool: pg.Pool = createPool({ ...this.settings, connectionString: this.address.urlFor(host) }, (error) => {
      this.onIdleError(error);
      this.failed(pool, error);
    });
    return pool;
  }

  /** A query or an idle connection of `pool` failed: search, once at a time, if that may mean a move. */
  private failed(pool: pg.Pool, error: unknown): void {
    // A pool already replaced has nothing to say about the current one.
    if (pool !== this.current.pool || this.searching !== undefined || this.ended) return;
    const reason = movedReason(error);
    if (reason === null) return;
    this.onEvent({ type: 'searching', from: hostName(this.current.host), reason });
    this.searching = this.search().finally(() => (this.searching = undefined));
  }

  private async search(): Promise<void> {
    const search = await locate(this.address, { stopped: () => this.ended });
    if (search.kind === 'stopped' || this.ended) return;
    if (search.kind === 'not-found') {
      this.onEvent({ type: 'not-found', rounds: search.rounds, reasons: search.reasons });
      return;
    }
    const previous = this.current;
    if (sameHost(search.host, previous.host)) {
      this.onEvent({ type: 'stayed', host: hostName(previous.host), searchMs: search.searchMs });
      return;
    }
    this.current = { host: search.host, pool: this.poolFor(search.host) };
    this.onEvent({
      type: 'moved',
      from: hostName(previous.host),
      to: hostName(search.host),
      searchMs: search.searchMs,
    });
    // Queries still running on the old pool end with their own timeouts; its idle connections close.
    previous.pool.end().catch(() => {});
  }
}

/** A pool for DATABASE_URL, and the URL of the one server it uses now. */
export interface OpenedPool {
  readonly pool: DatabasePool;
  /** The one-host URL of the server the pool uses now (for migrations at start). */
  url(): string;
  end(): Promise<void>;
}

/**
 * The pool for DATABASE_URL: a pg.Pool on its one host when the URL names one plain host (nothing
 * between the service and its pool), else a PrimaryLocator that finds the primary and follows it.
 */
export async function openPool(
  databaseUrl: string,
  settings: HostPoolSettings,
  onIdleError: (error: Error) => void,
  onEvent: (event: LocatorEvent) => void,
): Promise<OpenedPool> {
  const address = parseDatabaseUrl(databaseUrl);
  if (!needsLocator(address)) {
    const pool = createPool({ ...settings, connectionString: databaseUrl }, onIdleError);
    return { pool, url: () => databaseUrl, end: () => pool.end() };
  }
  const locator = await PrimaryLocator.start(address, settings, onEvent, onIdleError);
  return { pool: locator, url: () => locator.url, end: () => locator.end() };
}
