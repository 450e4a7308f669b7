import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';

// A client generated from the served /openapi.json (openapi-typescript + openapi-fetch), the way
// an outside team would: its types must compile a realistic flow under strict tsc, and the flow
// must then run against the live service and see what docs/API.md promises.

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
const flowSource = path.join(root, 'test', 'fixtures', 'openapi-client', 'client-flow.ts');

/** Strict settings a careful client project would use; DOM for fetch, Request and Response. */
const clientTsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
    lib: ['ES2023', 'DOM'],
  },
  files: ['client-flow.ts'],
};

let t: TestApp;
let dir: string;

beforeAll(async () => {
  t = await startTestApp();
  dir = await mkdtemp(path.join(os.tmpdir(), 'secventory-client-'));
  // The client resolves openapi-fetch, tsx and @types/node from the project's own packages.
  await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify(clientTsconfig, null, 2));
  await copyFile(flowSource, path.join(dir, 'client-flow.ts'));
  const document = await t.http('GET', '/openapi.json');
  expect(document.status).toBe(200);
  await writeFile(path.join(dir, 'openapi.json'), JSON.stringify(document.body, null, 2));
  await run(bin('openapi-typescript'), ['openapi.json', '--output', 'api-types.ts'], { cwd: dir });
}, 120_000);

afterAll(async () => {
  await t?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('a client generated from /openapi.json', () => {
  it('names the schemas it generates: Product, Inventory, Reservation, Event, EventPage, Problem', async () => {
    const types = await readFile(path.join(dir, 'api-types.ts'), 'utf8');
    for (const name of ['Product', 'Inventory', 'Reservation', 'Event', 'EventPage', 'Problem']) {
      expect(types).toMatch(new RegExp(`^ {8}${name}: \\{`, 'm'));
    }
  });

  it('type-checks a realistic flow under strict tsc, and refuses what the contract refuses', async () => {
    const result = await run(bin('tsc'), ['-p', 'tsconfig.json'], { cwd: dir }).then(
      () => 'ok',
      (error: { stdout: string }) => error.stdout,
    );
    expect(result).toBe('ok');
  }, 120_000);

  it('runs the flow on the live service: replay, purchase, a problem by its code, the cursor to the end', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'client-flow.ts', t.baseUrl, 'CLIENT-1'], {
      cwd: dir,
    });
    expect(JSON.parse(stdout)).toEqual({
      createdStatus: 201,
      available: 3,
      reservationStatus: 'active',
      replayedSameId: true,
      replayedHeader: 'true',
      soldOut: 'sold out: offer a waiting list',
      purchased: 'purchased',
      cancel: 'already paid: nothing to cancel',
      cancelCode: 'reservation_purchased',
      // product_created, reserved, rejected (sold out), purchased, rejected (cancel): five events, pages of two.
      eventSeqs: [1, 2, 3, 4, 5],
    });
  }, 60_000);
});
