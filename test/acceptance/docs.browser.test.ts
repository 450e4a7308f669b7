import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { launchChromium, requireChromium } from '../support/chromium.ts';

const screenshotPath = fileURLToPath(new URL('../../reports/docs.png', import.meta.url));

describe('the API reference page in a browser', () => {
  it('/docs shows every operation under its tag, its problem answers and the named schemas', async (ctx) => {
    requireChromium((note) => ctx.skip(note));
    const t = await startTestApp();
    const { browser, close } = await launchChromium({ width: 1400, height: 1100 });
    try {
      const doc = (await t.http('GET', '/openapi.json')).body;
      const operations = Object.values(
        doc.paths as Record<string, Record<string, { operationId: string; tags: string[] }>>,
      ).flatMap((methods) => Object.values(methods));
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${t.baseUrl}/docs`);

      await expect
        .poll(() => page.locator('.opblock').count(), { timeout: 20_000, interval: 250 })
        .toBe(operations.length);
      for (const { operationId, tags } of operations) {
        expect({ operationId, shown: await page.locator(`#operations-${tags[0]}-${operationId}`).count() }).toEqual({
          operationId,
          shown: 1,
        });
      }

      // A reservation's answers: the 201 and the refusals as application/problem+json.
      const reserve = page.locator('#operations-reservations-reserve');
      await reserve.locator('.opblock-summary').click();
      const responses = reserve.locator('.responses-table').first();
      await expect.poll(() => responses.textContent(), { timeout: 10_000 }).toContain('409');
      const text = await responses.textContent();
      for (const shown of [
        '201',
        '400',
        '404',
        '413',
        '415',
        '422',
        '503',
        'application/problem+json',
        'idempotent-replayed',
        'retry-after',
      ]) {
        expect(text).toContain(shown);
      }
      const schemaTitles = await page.locator('section.models .json-schema-2020-12__title').allTextContents();
      expect(schemaTitles).toEqual(
        expect.arrayContaining(['Problem', 'Product', 'Inventory', 'Reservation', 'Event', 'EventPage']),
      );
      expect(errors).toEqual([]);

      await mkdir(path.dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true });
    } finally {
      await close();
      await t.close();
    }
  });
});
