// Which load generator drives the timed scenarios. wrk (C, epoll) costs the 2-core bench machine
// far less CPU than autocannon (JavaScript), which competed with the server for a core and
// capped the rate it could measure; autocannon stays as the fallback where wrk is missing.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { GeneratorName } from './load-result.ts';

export type TimedGeneratorName = Exclude<GeneratorName, 'undici'>;
export const timedGeneratorNames: readonly TimedGeneratorName[] = ['wrk', 'autocannon'];

/** The path of an executable `name` on PATH, or null. */
export function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The generator asked for, or wrk when it is on PATH, else autocannon with a note on stderr. */
export function chooseGenerator(requested: string | undefined): TimedGeneratorName {
  if (requested !== undefined) {
    if (!timedGeneratorNames.includes(requested as TimedGeneratorName)) {
      throw new Error(`--generator must be one of ${timedGeneratorNames.join(', ')}, not ${requested}`);
    }
    if (requested === 'wrk' && onPath('wrk') === null)
      throw new Error('--generator wrk: wrk is not on PATH (apt-get install -y wrk)');
    return requested as TimedGeneratorName;
  }
  if (onPath('wrk') !== null) return 'wrk';
  process.stderr.write(
    'bench: wrk not found on PATH, using autocannon (which takes CPU from the server); install wrk with `apt-get install -y wrk`\n',
  );
  return 'autocannon';
}
