// A real browser (headless Chromium through playwright-core, the Debian chromium package) signs
// in to a sample relying party through Palisade's login page, with and without JavaScript, and
// with a TOTP second factor enrolled from the page (codes from the `otpauth` package).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import * as OTPAuth from 'otpauth';
import { chromium } from 'playwright-core';
import { discover, fixtureWithUser } from '../lib/fixture.mjs';
import { randomToken, registerClient, registerUser } from '../lib/issuer.mjs';
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

  async function expectSignedIn({ page, events }, user = f.user) {
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
    assert.equal(await page.locator('#name').textContent(), user.name);
    assert.equal(await page.locator('#email').textContent(), user.email);
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

  it('enrols an authenticator from the page, then signs in with a TOTP code', async () => {
    // Flagged by the admin API: under the default Optional policy this user must enrol.
    const user = {
      username: `totp-${randomToken(6)}`,
      password: `pw-${randomToken(12)}`,
      email: 'totp@example.test',
      name: 'Tia Totp',
    };
    await registerUser(f, { ...user, mfaRequired: true });
    const signInWithPassword = async (page) => {
      await page.goto(`${rp.url}/start`);
      await page.waitForURL((u) => where(u.href) === `${f.issuer}/login`);
      await page.getByLabel('Username').fill(user.username);
      await page.getByLabel('Password').fill(user.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
    };

    let totp;
    const first = await launchBrowser();
    try {
      const { page, events } = first;
      await signInWithPassword(page);
      await page.getByRole('heading', { name: 'Set up two-step verification' }).waitFor();
      assert.equal(await page.locator('.qr svg').count(), 1, 'the QR code is rendered inline');
      const secret = (await page.locator('#totp-secret').textContent()).replaceAll(' ', '');
      const uri = OTPAuth.URI.parse(await page.locator('#otpauth-uri').getAttribute('href'));
      assert.equal(uri.secret.base32, secret, 'the link and the text carry one secret');
      assert.equal(uri.label, user.username);
      assert.equal(uri.issuer, new URL(f.issuer).hostname);
      assert.equal(uri.algorithm, 'SHA1');
      assert.equal(uri.digits, 6);
      assert.equal(uri.period, 30);
      totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });

      await page.getByLabel('Code from the app').fill(totp.generate());
      await page.getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
      assert.equal(await page.locator('#recovery-codes li').count(), 10);
      await page.getByRole('button', { name: 'Continue' }).click();
      await expectSignedIn(first, user);
      assert.deepEqual(
        events.filter((e) => /Content Security Policy|Refused/.test(e)),
        [],
        'the pages load nothing the CSP forbids',
      );
    } finally {
      await first.close();
    }

    // A new browser (no session): password, then a code. The enrolment code's time step is
    // used up, so the app's next code (one step ahead, inside the window) is the one to type.
    const second = await launchBrowser();
    try {
      const { page } = second;
      await signInWithPassword(page);
      await page.getByRole('heading', { name: 'Two-step verification' }).waitFor();
      await page.getByLabel('Code').fill(totp.generate({ timestamp: Date.now() + 30_000 }));
      await page.getByRole('button', { name: 'Verify' }).click();
      await expectSignedIn(second, user);
    } finally {
      await second.close();
    }
  });
});
