// A real browser (headless Chromium through playwright-core, the Debian chromium package) signs
// in to a sample relying party through Palisade's login page, with and without JavaScript.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import { discover, fixtureWithUser } from '../lib/fixture.mjs';
import { randomToken, registerClient } from '../lib/issuer.mjs';
import { startSampleRp } from '../lib/sample-rp.mjs';

const CHROMIUM = process.env.PALISADE_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** A fresh Chromium with its own temporary profile; `close()` removes the profile. */
async function launchBrowser(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'palisade-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
    viewport: { width: 900, height: 700 },
    ...options,
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = context.pages()[0] ?? (await context.newPage());
  // What the browser refused and why (CSP violations are console errors): failure messages.
  const events = [];
  page.on('console', (m) => events.push(`console ${m.type()}: ${m.text()}`));
  page.on('requestfailed', (r) => events.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  return {
    page,
    events,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** origin + path of a URL string, to compare pages without their query. */
const where = (href) => {
  const u = new URL(href);
  return `${u.origin}${u.pathname}`;
};

describe('browser sign-in through the login page (headless Chromium)', () => {
  let f;
  let rp;

  before(async () => {
    f = fixtureWithUser();
    rp = await startSampleRp();
    const secret = randomToken(32);
    await registerClient(f, {
      clientId: 'e2e-browser-rp',
      clientName: 'Sample app',
      secret,
      redirectUris: [rp.redirectUri],
      grantTypes: ['authorization_code', 'refresh_token'],
      scopes: ['openid', 'profile', 'email'],
    });
    const config = await discover(f.issuer, 'e2e-browser-rp', secret);
    client.enableNonRepudiationChecks(config);
    rp.configure(config);
  });

  after(async () => {
    await rp?.stop();
  });

  async function expectSignedIn({ page, events }) {
    try {
      await page.waitForURL((u) => where(u.href) === rp.redirectUri);
    } catch (e) {
      throw new Error(
        `the browser did not reach the app's callback; still at ${page.url()}\n${events.join('\n')}`,
        { cause: e },
      );
    }
    const error = await page.locator('#error').count();
    assert.equal(error, 0, `the RP callback failed: ${error && (await page.locator('#error').textContent())}`);
    assert.equal(await page.title(), 'Signed in');
    assert.ok((await page.locator('#sub').textContent()).length > 0, 'a subject is shown');
    assert.equal(await page.locator('#name').textContent(), f.user.name);
    assert.equal(await page.locator('#email').textContent(), f.user.email);
  }

  it('a wrong password stays on the login page with the error; the right one reaches the app', async () => {
    const browser = await launchBrowser();
    try {
      const { page } = browser;
      await page.goto(`${rp.url}/start`);
      await page.waitForURL((u) => where(u.href) === `${f.issuer}/login`);
      assert.match(await page.title(), /Sign in/);
      const screenshot = process.env.PALISADE_LOGIN_SCREENSHOT || join(tmpdir(), 'palisade-login-page.png');
      await page.screenshot({ path: screenshot, fullPage: true });

      await page.getByLabel('Username').fill(f.user.username);
      await page.getByLabel('Password').fill('not-the-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.equal((await alert.textContent()).trim(), 'Incorrect username or password.');
      assert.equal(where(page.url()), `${f.issuer}/login`, 'no redirect after a failed login');

      await page.getByLabel('Username').fill(f.user.username);
      await page.getByLabel('Password').fill(f.user.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expectSignedIn(browser);
    } finally {
      await browser.close();
    }
  });

  it('signs in with JavaScript disabled', async () => {
    const browser = await launchBrowser({ javaScriptEnabled: false });
    try {
      const { page } = browser;
      // Scripts really are off in this browser.
      await page.goto(`${rp.url}/js-check`);
      assert.equal(await page.locator('#js').textContent(), 'off');

      await page.goto(`${rp.url}/start`);
      await page.waitForURL((u) => where(u.href) === `${f.issuer}/login`);
      await page.getByLabel('Username').fill(f.user.username);
      await page.getByLabel('Password').fill(f.user.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expectSignedIn(browser);
    } finally {
      await browser.close();
    }
  });
});
