/**
 * examples/browser-wasm end to end in Debian's headless Chromium (/usr/bin/chromium, driven by
 * playwright-core, no browser download): the page pulls a 16 MiB wasm layer through
 * `layerpipe serve --listen ws://…` with the token, verifies its digest with SubtleCrypto,
 * compiles while streaming and shows its exports' results. The screenshot is saved to
 * test-artifacts/browser-wasm.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startBrowserDemo } from '../../examples/browser-wasm/serve-page';
import { DEMO_EXPORTS } from '../../examples/wasm-fetch/demo-module';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', '..', 'test-artifacts');

test('the browser example pulls, verifies and runs a wasm module from an OCI image in Chromium', { skip: existsSync(CHROMIUM) ? false : 'chromium is not installed (apt-get install chromium)', timeout: 120_000 }, async () => {
  const demo = await startBrowserDemo(16 * 1024 * 1024);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    await page.goto(demo.pageUrl);
    await page.waitForFunction(() => !/working/.test(document.getElementById('result')?.textContent ?? 'working'), undefined, { timeout: 60_000 });
    const result = await page.textContent('#result');
    const expected = `add(2, 40) = ${DEMO_EXPORTS.add(2, 40)}; fib(20) = ${DEMO_EXPORTS.fib(20)}; answer() = ${DEMO_EXPORTS.answer()}; ${demo.artifact.layer.size} bytes, digest verified`;
    assert.equal(result, expected, `console: ${consoleLines.join('\n')}\nservice: ${demo.serviceLog()}`);
    assert.equal(await page.evaluate(() => (document.getElementById('progress') as unknown as { value: number }).value), 1);
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'browser-wasm.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 1000);
  } finally {
    await browser.close();
    await demo.stop();
  }
});
