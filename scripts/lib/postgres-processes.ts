import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { postmasterOf, type EmbeddedServer } from '../../src/persistence/embedded-postgres.ts';

// Finding and signalling the processes of a PostgreSQL server, for the chaos tests and the proof:
// a SIGKILL of the postmaster alone is no database crash (its backends keep serving the
// connections they have), and SIGSTOP must reach every process to freeze the server.

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function numericEntries(): string[] {
  return readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name));
}

/**
 * Every live process descending from `roots` (roots first, then by generation), read from
 * /proc/<pid>/stat. Zombies count as gone: they hold no connection, lock or shared memory any
 * more and only wait to be reaped. Without /proc (not Linux) only the live roots are known.
 */
export function processTree(roots: readonly number[]): number[] {
  const children = new Map<number, number[]>();
  const zombies = new Set<number>();
  let entries: string[];
  try {
    entries = numericEntries();
  } catch {
    return roots.filter(pidAlive);
  }
  for (const name of entries) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // it exited while we looked
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so parse after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(name);
    if (state === 'Z' || state === 'X') zombies.add(pid);
    const siblings = children.get(Number(ppid));
    if (siblings === undefined) children.set(Number(ppid), [pid]);
    else siblings.push(pid);
  }
  const tree: number[] = [];
  const seen = new Set<number>();
  for (let generation = roots.filter((pid) => existsSync(`/proc/${pid}`)); generation.length > 0;) {
    const next: number[] = [];
    for (const pid of generation) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      if (!zombies.has(pid)) tree.push(pid);
      next.push(...(children.get(pid) ?? []));
    }
    generation = next;
  }
  return tree;
}

/**
 * The postmaster and every process below it (backends, checkpointer, WAL writer, ...), postmaster
 * first; empty when the server is gone.
 */
export function postgresProcesses(server: EmbeddedServer): number[] {
  const roots = new Set<number>();
  if (server.pid !== undefined) roots.add(server.pid);
  const fromFile = postmasterOf(server.dataDir)?.pid;
  if (fromFile !== undefined) roots.add(fromFile);
  return processTree([...roots]);
}

/**
 * Sends a signal to the postmaster and all its descendants. SIGSTOP must freeze them all to
 * freeze the server, and SIGCONT must wake them all. The postmaster goes first so that it forks
 * no new child meanwhile; the tree is read again until no process is left unsignalled. Returns
 * the pids signalled.
 */
export function signalPostgres(server: EmbeddedServer, signal: NodeJS.Signals): number[] {
  const signalled = new Set<number>();
  for (let round = 0; round < 10; round++) {
    const pending = postgresProcesses(server).filter((pid) => !signalled.has(pid));
    if (pending.length === 0) break;
    for (const pid of pending) {
      try {
        process.kill(pid, signal);
      } catch (error) {
        // ESRCH: it exited between the listing and the signal, which is what a kill wants anyway.
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
      signalled.add(pid);
    }
  }
  return [...signalled];
}

/**
 * Every live process whose working directory is `dir`. PostgreSQL's processes all work in their
 * data directory, so this finds a server's postmaster and its backends, orphaned ones included,
 * whoever started them and however the data directory was named to them.
 */
export function processesWorkingIn(dir: string): number[] {
  const target = realpathSync(dir);
  const found: number[] = [];
  for (const name of numericEntries()) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) continue;
      if (readlinkSync(`/proc/${name}/cwd`) === target) found.push(Number(name));
    } catch {
      continue; // it exited while we looked, or is not ours to read
    }
  }
  return found;
}
