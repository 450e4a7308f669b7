import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { launchChromium, requireChromium } from '../support/chromium.ts';

const screenshotPath = fileURLToPath(new URL('../../reports/dashboard.png', import.meta.url));
const hotSku = 'DASH-HOT';

/** Reserves in a few loops until stopped: mostly the hot SKU, some on another, some refused. */
function startLoad(t: TestApp): { stop: () => Promise<void> } {
  let running = true;
  let seq = 0;
  const loop = async (worker: number) => {
    while (running) {
      const n = ++seq;
      const [sku, quantity] = n % 10 === 0 ? ['DASH-SMALL', 1_000] : n % 5 === 0 ? ['DASH-OTHER', 1] : [hotSku, 1];
      await t.http('POST', `/products/${sku}/reservations`, { key: `dash-${worker}-${n}`, body: { quantity } });
    }
  };
  const loops = Array.from({ length: 8 }, (_, worker) => loop(worker));
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

// Just enough of the DOM for strokePixels: this project compiles without the DOM library.
interface PageCanvas {
  readonly width: number;
  readonly height: number;
  getContext(
    kind: '2d',
  ): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray; width: number } } | null;
}
declare const document: { querySelector(selector: string): PageCanvas | null };

interface Stroke {
  readonly chartId: string;
  readonly rgb: readonly [number, number, number];
}

/**
 * Runs in the page: how many pixels of a chart's canvas have the given stroke colour, and how
 * many pixel rows they span (a series stuck at zero is a flat line a few pixels high).
 */
function strokePixels({ chartId, rgb }: Stroke): { count: number; rows: number } {
  const canvas = document.querySelector(`#${chartId} canvas`);
  const image = canvas?.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height);
  if (image === undefined) return { count: 0, rows: 0 };
  const { data, width } = image;
  let count = 0;
  let top = Number.POSITIVE_INFINITY;
  let bottom = -1;
  for (let i = 0; i < data.length; i += 4) {
    const near =
      Math.abs(data[i]! - rgb[0]) < 40 && Math.abs(data[i + 1]! - rgb[1]) < 40 && Math.abs(data[i + 2]! - rgb[2]) < 40;
    if (!near || data[i + 3]! < 200) continue;
    count++;
    const y = Math.floor(i / 4 / width);
    top = Math.min(top, y);
    bottom = Math.max(bottom, y);
  }
  return { count, rows: count === 0 ? 0 : bottom - top + 1 };
}

/** The charts' stroke colours, as dashboard.html sets them. */
const throughputAll: Stroke = { chartId: 'c-throughput', rgb: [0x15, 0x65, 0xc0] };
const latencyP99: Stroke = { chartId: 'c-latency', rgb: [0x6a, 0x1b, 0x9a] };
const failureRate: Stroke = { chartId: 'c-failures', rgb: [0xc6, 0x28, 0x28] };
const activeReservations: Stroke = { chartId: 'c-active', rgb: [0x00, 0x83, 0x8f] };

describe('the dashboard in a browser', () => {
  it('during a load, /dashboard draws its charts and shows the hot SKU first among the busiest actors', async (ctx) => {
    requireChromium((note) => ctx.skip(note));
    const t = await startTestApp();
    const { browser, close } = await launchChromium({ width: 1400, height: 1100 });
    const load = { stop: async () => {} };
    try {
      for (const [sku, stock] of [
        [hotSku, 1_000_000],
        ['DASH-OTHER', 1_000_000],
        ['DASH-SMALL', 10],
      ] as const) {
        expect((await t.http('POST', '/products', { body: { sku, name: sku, stock } })).status).toBe(201);
      }
      load.stop = startLoad(t).stop;

      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`${t.baseUrl}/dashboard`);
      expect(await page.locator('.chart canvas').count()).toBe(4);

      // Throughput rises off zero once a complete second of load has been reported.
      await expect
        .poll(() => page.evaluate(strokePixels, throughputAll), { timeout: 20_000, interval: 250 })
        .toSatisfy((p: { rows: number }) => p.rows > 20);
      await expect
        .poll(() => page.evaluate(strokePixels, latencyP99), { timeout: 10_000, interval: 250 })
        .toSatisfy((p: { count: number }) => p.count > 20);
      await expect
        .poll(() => page.evaluate(strokePixels, activeReservations), { timeout: 10_000, interval: 250 })
        .toSatisfy((p: { rows: number }) => p.rows > 20);
      await expect
        .poll(() => page.evaluate(strokePixels, failureRate), { timeout: 10_000, interval: 250 })
        .toSatisfy((p: { count: number }) => p.count > 20);

      await expect
        .poll(() => page.locator('#actors tbody tr:first-child td:first-child').textContent(), {
          timeout: 10_000,
          interval: 250,
        })
        .toBe(hotSku);
      await expect.poll(() => page.locator('#t-active').textContent(), { timeout: 5_000 }).toMatch(/^[0-9,]+$/);
      expect(await page.locator('#status').getAttribute('class')).not.toBe('down');
      expect(errors).toEqual([]);

      await mkdir(path.dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true });
    } finally {
      await load.stop();
      await close();
      await t.close();
    }
  });
});
