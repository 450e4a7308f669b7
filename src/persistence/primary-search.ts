import pg from 'pg';
import { assert } from '../engine/errors.ts';
import {
  primaryLocatePauseMsMax,
  primaryLocatePauseMsMin,
  primaryLocateRoundsMax,
  primaryProbeMsMax,
} from '../engine/limits.ts';
import {
  hostName,
  needsLocator,
  parseDatabaseUrl,
  type DatabaseAddress,
  type HostAddress,
  type TargetSessionAttrs,
} from './multi-host.ts';

// Finding the primary among the hosts of a multi-host DATABASE_URL, as libpq does with
// target_session_attrs: written by hand because node-postgres has neither (see multi-host.ts).
// primary-locator.ts follows the primary with it; migrate and verify, which connect once, ask
// primaryUrl.

/** What one host said when asked whether it is the server the URL wants. */
export type Probe =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'refused'; readonly why: 'read-only' | 'in recovery' }
  | { readonly kind: 'unreachable'; readonly reason: string };

/** One search: the host found, or why every host was passed over in the last round. */
export type Search =
  | { readonly kind: 'found'; readonly host: HostAddress; readonly rounds: number; readonly searchMs: number }
  | { readonly kind: 'not-found'; readonly rounds: number; readonly reasons: readonly string[] }
  | { readonly kind: 'stopped' };

/** Whether the session is read-only (a standby, or default_transaction_read_only) and in recovery. */
const probeSql = `\
select current_setting('transaction_read_only') = 'on' as read_only,
       pg_is_in_recovery() as in_recovery`;

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0]!;

/** Connects to one host and asks whether it is the server `target` wants; primaryProbeMsMax for each step. */
export async function probeHost(url: string, target: TargetSessionAttrs): Promise<Probe> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: primaryProbeMsMax,
    query_timeout: primaryProbeMsMax,
    application_name: 'secventory-locator',
  });
  // A connection that fails after the probe has answered concerns nobody.
  client.on('error', () => {});
  try {
    await client.connect();
    if (target === 'any') return { kind: 'accepted' };
    const { rows } = await client.query<{ read_only: boolean; in_recovery: boolean }>(probeSql);
    const [state] = rows;
    assert(state !== undefined, 'the probe answers one row');
    if (state.in_recovery) return { kind: 'refused', why: 'in recovery' };
    // 'primary' takes a server out of recovery even when it refuses writes; 'read-write' does not.
    if (target === 'read-write' && state.read_only) return { kind: 'refused', why: 'read-only' };
    return { kind: 'accepted' };
  } catch (error) {
    return { kind: 'unreachable', reason: firstLine(error) };
  } finally {
    // Not awaited: ending an idle connection waits for the server's goodbye, which a server frozen
    // since it answered would hold back. The socket closes whenever the server lets it.
    client.end().catch(() => {});
  }
}

const describeProbe = (p: Probe) => (p.kind === 'accepted' ? 'accepted' : p.kind === 'refused' ? p.why : p.reason);

export interface SearchOptions {
  /** Rounds over the hosts before giving up; primaryLocateRoundsMax unless told. */
  readonly roundsMax?: number;
  /** Checked before each round: the locator was ended. */
  readonly stopped?: () => boolean;
}

/**
 * Rounds over the hosts, all probed at once, until one is the server the URL wants: the first in
 * the URL's order among those that accepted (libpq's order, without waiting on a host that does
 * not answer for longer than one probe). Between rounds a pause from primaryLocatePauseMsMin,
 * doubling up to primaryLocatePauseMsMax.
 */
export async function locate(address: DatabaseAddress, options: SearchOptions = {}): Promise<Search> {
  const { roundsMax = primaryLocateRoundsMax, stopped = () => false } = options;
  const startedMs = performance.now();
  let pauseMs = primaryLocatePauseMsMin;
  let reasons: string[] = [];
  for (let round = 1; round <= roundsMax; round++) {
    if (stopped()) return { kind: 'stopped' };
    const probes = await Promise.all(address.hosts.map((h) => probeHost(address.urlFor(h), address.target)));
    const at = probes.findIndex((p) => p.kind === 'accepted');
    const host = address.hosts[at];
    if (host !== undefined) return { kind: 'found', host, rounds: round, searchMs: performance.now() - startedMs };
    reasons = probes.map((p, i) => `${hostName(address.hosts[i]!)} ${describeProbe(p)}`);
    if (round < roundsMax) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      pauseMs = Math.min(pauseMs * 2, primaryLocatePauseMsMax);
    }
  }
  return { kind: 'not-found', rounds: roundsMax, reasons };
}

/** No host of the URL was the server it asks for; the message is one line. */
export class NoPrimaryError extends Error {
  override name = 'NoPrimaryError';
}

/** The error of a search that found no host the URL asks for. */
export function notFound(address: DatabaseAddress, search: Exclude<Search, { kind: 'found' }>): NoPrimaryError {
  const reasons = search.kind === 'not-found' ? `: ${search.reasons.join('; ')}` : '';
  return new NoPrimaryError(`no host of DATABASE_URL is ${address.target}${reasons}`);
}

/**
 * The one-host URL of the server DATABASE_URL asks for: the URL itself when it names one plain
 * host, otherwise the host one search finds. For migrate and verify, which connect once.
 */
export async function primaryUrl(databaseUrl: string, options: SearchOptions = {}): Promise<string> {
  const address = parseDatabaseUrl(databaseUrl);
  if (!needsLocator(address)) return databaseUrl;
  const search = await locate(address, options);
  if (search.kind !== 'found') throw notFound(address, search);
  return address.urlFor(search.host);
}

/**
 * Why a failed query may mean that its server is no longer the primary, or null when the server
 * answered in a way that says nothing of the kind (a constraint, a statement timeout, a conflict).
 */
export function movedReason(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === '25006') return 'a write was refused: the server is read-only';
  if (code === '57P01' || code === '57P02' || code === '57P03') return 'the server is shutting down or starting up';
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08')) return null;
  // Class 08, or no SQLSTATE at all: the connection failed, was lost or timed out.
  return `the connection failed: ${firstLine(error)}`;
}
