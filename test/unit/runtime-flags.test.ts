import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { serveNodeFlags } from '../../src/runtime-flags.ts';

describe('runtime flags', () => {
  it('npm start runs the server with the V8 flags the benchmarks measured it with', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${serveNodeFlags.join(' ')} bin/secventory.js serve`);
  });
});
