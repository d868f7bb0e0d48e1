// A person signing in: headless Chromium opens a protected page, is sent to
// the identity provider's sign-in page, types a name, clicks "Sign in", and
// must land back on the protected page showing that name.
//   SITE=http://127.0.0.1:PORT START=/dashboard/whoami.cgi NAME="Grace Hopper"
//   SCREENSHOT=/tmp/x.png node signin.mjs
// Over https: SPKI=hash1,hash2 trusts exactly those certificates (the site's and the identity
// provider's; see tests/lib/httpd.py spki_hash). ACCESS_COOKIE names the session cookie to check
// (default sk-access-token). Prints JSON: the final URL, the protocol of the signed-in page's
// navigation (h2, http/1.1) and the site's cookies with their attributes.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const site = process.env.SITE;
const start = process.env.START || '/dashboard/';
const name = process.env.NAME || 'Grace Hopper';
const email = process.env.EMAIL || 'grace@example.com';
const expectText = process.env.EXPECT || name;
const accessCookie = process.env.ACCESS_COOKIE || 'sk-access-token';
const spki = process.env.SPKI ? ['--ignore-certificate-errors-spki-list=' + process.env.SPKI] : [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         ...spki],
});
try {
  const page = await browser.newPage();
  await page.goto(site + start);
  // The identity provider's own page: a different origin than the site.
  await page.waitForSelector('#signin', { timeout: 15000 });
  assert.notEqual(new URL(page.url()).origin, new URL(site).origin);
  await page.fill('input[name="email"]', email);
  await page.fill('input[name="name"]', name);
  await Promise.all([page.waitForURL(u => u.toString().startsWith(site), { timeout: 15000 }),
                     page.click('#signin')]);
  await page.waitForLoadState('load');
  assert.equal(new URL(page.url()).pathname, new URL(site + start).pathname);
  const body = await page.textContent('body');
  assert.ok(body.includes(expectText), `page does not show "${expectText}": ${body.slice(0, 300)}`);
  const protocol = await page.evaluate(
    () => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  const cookies = await page.context().cookies(site);
  const access = cookies.find(c => c.name === accessCookie);
  assert.ok(access && access.httpOnly && access.sameSite === 'Lax', 'session cookie attributes');
  const seen = cookies.map(({ name, domain, path, secure, httpOnly, sameSite }) =>
    ({ name, domain, path, secure, httpOnly, sameSite }));
  // WEBSOCKET=/path: the signed-in page opens a WebSocket there (wss on https), reads the
  // backend's first message (JSON of the upgrade request it saw) and an echo of one it sends.
  let websocket = null;
  if (process.env.WEBSOCKET) {
    websocket = await page.evaluate(path => new Promise((resolve, reject) => {
      const url = new URL(path, location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const ws = new WebSocket(url), got = [];
      setTimeout(() => reject(new Error('no WebSocket answer in 10 s')), 10000);
      ws.onerror = () => reject(new Error('WebSocket failed'));
      ws.onmessage = e => {
        got.push(e.data);
        if (got.length === 1) ws.send('ping from chromium');
        else { ws.close(); resolve({ first: JSON.parse(got[0]), echo: got[1] }); }
      };
    }), process.env.WEBSOCKET);
  }
  if (process.env.SCREENSHOT) {
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  }
  // Sign out: the session cookies go, and the protected page asks again.
  if (process.env.LOGOUT) {
    await page.goto(site + process.env.LOGOUT);
    await page.waitForLoadState('load');
    const after = await page.context().cookies(site);
    assert.ok(!after.find(c => c.name === accessCookie && c.value), 'cookie cleared');
  }
  console.log(JSON.stringify({ ok: true, url: page.url(), protocol, cookies: seen, websocket }));
} finally {
  await browser.close();
}
fs.writeSync(1, '');
