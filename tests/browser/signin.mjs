// A person signing in: headless Chromium opens a protected page, is sent to
// the identity provider's sign-in page, types a name, clicks "Sign in", and
// must land back on the protected page showing that name.
//   SITE=http://127.0.0.1:PORT START=/dashboard/whoami.cgi NAME="Grace Hopper"
//   SCREENSHOT=/tmp/x.png node signin.mjs
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const site = process.env.SITE;
const start = process.env.START || '/dashboard/';
const name = process.env.NAME || 'Grace Hopper';
const email = process.env.EMAIL || 'grace@example.com';
const expectText = process.env.EXPECT || name;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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
  const cookies = await page.context().cookies(site);
  const access = cookies.find(c => c.name === 'sk-access-token');
  assert.ok(access && access.httpOnly && access.sameSite === 'Lax', 'session cookie attributes');
  if (process.env.SCREENSHOT) {
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  }
  // Sign out: the session cookies go, and the protected page asks again.
  if (process.env.LOGOUT) {
    await page.goto(site + process.env.LOGOUT);
    await page.waitForLoadState('load');
    const after = await page.context().cookies(site);
    assert.ok(!after.find(c => c.name === 'sk-access-token' && c.value), 'cookie cleared');
  }
  console.log(JSON.stringify({ ok: true, url: page.url() }));
} finally {
  await browser.close();
}
fs.writeSync(1, '');
