import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

// Debian's Chromium: the machines are offline, so Playwright cannot download a browser of its own.
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether a browser test can run here. Without Chromium it skips with the command that installs
 * it, except in CI, where .ci/run installs it and its absence is a failure.
 */
export function requireChromium(skip: (note: string) => void): void {
  if (existsSync(chromiumPath)) return;
  if (process.env.CI)
    throw new Error(`no Chromium at ${chromiumPath}: CI must run this test (.ci/run installs Debian's chromium)`);
  skip(`no Chromium at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH) to run this test`);
}

/** A headless Chromium with a throw-away profile; close() removes the profile too. */
export async function launchChromium(viewport: {
  width: number;
  height: number;
}): Promise<{ browser: BrowserContext; close: () => Promise<void> }> {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'secventory-chromium-'));
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    viewport,
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
