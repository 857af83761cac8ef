// A real headless browser for the dashboard tests: Debian's chromium (hack/setup installs it)
// driven by puppeteer-core over the DevTools protocol. Nothing is downloaded: the executable is
// the system's. Collects what the page reports (errors, CSP violations) for the tests to assert.

import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env.VL_CHROMIUM ?? '/usr/bin/chromium';

export interface BrowserBed {
  browser: Browser;
  page: Page;
  /** Console errors, page errors and CSP violations seen so far. */
  problems: string[];
  /** The map as the page shows it: node name -> VM keys (ns/name) in its box, ghosts excluded. */
  placement(): Promise<Record<string, string[]>>;
  close(): Promise<void>;
}

export async function openDashboard(url: string, size = { width: 1400, height: 1000 }): Promise<BrowserBed> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run hack/setup (it installs Debian's chromium), or set VL_CHROMIUM`);
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root chromium needs --no-sandbox; the page is our own, served from loopback.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
    defaultViewport: size,
  });
  const problems: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${(e as Error).message}`));
    await page.evaluateOnNewDocument(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#conn[data-state="live"]', { timeout: 20_000 });
    await page.waitForSelector('.node[data-node]', { timeout: 20_000 });
    return {
      browser, page, problems,
      placement: () => page.evaluate(() => {
        const out: Record<string, string[]> = {};
        for (const box of document.querySelectorAll<HTMLElement>('.node[data-node]')) {
          out[box.dataset.node ?? ''] = [...box.querySelectorAll<HTMLElement>('.vm[data-vm]')].map((e) => e.dataset.vm ?? '').sort();
        }
        return out;
      }),
      close: () => browser.close(),
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}
