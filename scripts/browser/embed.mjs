// embed.mjs drives Debian's headless Chromium through playwright-core to watch hlsedge's embed.html pages.
// It is run by proxy/player_test.go; the Go test makes the assertions, this script only observes and reports.
//
//   node scripts/browser/embed.mjs cases.json > results.json
//
// cases.json: {"chromium": "/usr/bin/chromium", "userDataDir": "...", "args": ["--more-flags"], "cases": [
//   {"name": "play", "url": "http://127.0.0.1:PORT/a001/embed.html?token=...", "wait": "play", "minTime": 4,
//    "timeoutMs": 40000, "screenshot": "/path/play.png"},
//   {"name": "denied", "url": "...", "wait": "error", "timeoutMs": 15000},
//   {"name": "expires", "url": "...", "wait": "play-then-error", "onPlayed": "http://127.0.0.1:PORT/expire"}]}
// Each result: {name, waited, startTime (currentTime when playback began), state, status, message, detail, engine,
// played (the page played at some point), currentTime, nativeHLS, mse, pwned,
// consoleErrors, failedRequests, error}. The process exits 0 whenever it could report, even if a wait timed out.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// The flags the issue asks for. Playwright adds its own automation flags; it never downloads a browser here
// because executablePath points at the system one.
const args = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
  // The test's own, such as --ignore-certificate-errors-spki-list for an https edge with a test certificate.
  ...(spec.args || []),
];

const context = await chromium.launchPersistentContext(spec.userDataDir, {
  executablePath: spec.chromium,
  headless: true,
  args,
  viewport: { width: 640, height: 360 },
  timeout: 30000,
});

const results = [];
try {
  for (const c of spec.cases) {
    results.push(await runCase(context, c));
  }
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n');

async function runCase(context, c) {
  const page = await context.newPage();
  const consoleErrors = [];
  const failedRequests = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text().slice(0, 300)); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + String(e).slice(0, 300)));
  page.on('dialog', (d) => { consoleErrors.push('dialog: ' + d.message()); d.dismiss().catch(() => {}); });
  page.on('response', (r) => {
    if (r.status() >= 400) failedRequests.push(r.status() + ' ' + new URL(r.url()).pathname);
  });
  const res = { name: c.name, waited: false, error: '' };
  try {
    await page.goto(c.url, { waitUntil: 'load', timeout: 15000 });
    const timeout = c.timeoutMs || 30000;
    if (c.wait === 'play') {
      // Live playback starts wherever the window is: measure the advance from the first frame played.
      const deadline = Date.now() + timeout;
      await page.waitForFunction(() => {
        const v = document.getElementById('video');
        return v && !v.paused && v.currentTime > 0 && document.body.getAttribute('data-state') === 'playing';
      }, null, { timeout, polling: 100 });
      res.startTime = await page.evaluate(() => document.getElementById('video').currentTime);
      await page.waitForFunction(([t0, d]) => document.getElementById('video').currentTime > t0 + d,
        [res.startTime, c.minTime || 4], { timeout: Math.max(1000, deadline - Date.now()), polling: 250 });
    } else if (c.wait === 'play-then-error') {
      // Plays first; then the test is told (onPlayed) and makes the edge refuse the token, on its own clock rather
      // than on the wall clock, and the page must turn to its error.
      const deadline = Date.now() + timeout;
      await page.waitForFunction(() => {
        const v = document.getElementById('video');
        return v && !v.paused && v.currentTime > 0 && document.body.getAttribute('data-state') === 'playing';
      }, null, { timeout, polling: 100 });
      if (c.onPlayed) await fetch(c.onPlayed, { method: 'POST' });
      await page.waitForFunction(() => document.body.getAttribute('data-state') === 'error', null,
        { timeout: Math.max(1000, deadline - Date.now()), polling: 100 });
    } else {
      await page.waitForFunction(() => document.body.getAttribute('data-state') === 'error', null,
        { timeout, polling: 100 });
    }
    res.waited = true;
  } catch (e) {
    res.error = String(e && e.message || e).split('\n')[0];
  }
  try {
    Object.assign(res, await page.evaluate(() => {
      const v = document.getElementById('video');
      const b = document.body;
      const mse = window.MediaSource && MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"');
      return {
        state: b.getAttribute('data-state') || '',
        status: b.getAttribute('data-status') || '',
        engine: b.getAttribute('data-engine') || '',
        played: b.getAttribute('data-played') === '1',
        message: (document.getElementById('msg') || {}).textContent || '',
        detail: (document.getElementById('detail') || {}).textContent || '',
        currentTime: v ? v.currentTime : -1,
        videoWidth: v ? v.videoWidth : 0,
        nativeHLS: v ? v.canPlayType('application/vnd.apple.mpegurl') : '',
        mse: !!mse,
        pwned: !!window.__pwned || document.querySelector('img[src="x"]') !== null,
      };
    }));
    if (c.screenshot) await page.screenshot({ path: c.screenshot });
  } catch (e) {
    res.error = (res.error ? res.error + '; ' : '') + String(e && e.message || e).split('\n')[0];
  }
  res.consoleErrors = consoleErrors;
  res.failedRequests = failedRequests;
  await page.close();
  return res;
}
