// A minimal user agent built on fetch: manual redirects, a cookie jar, and the HTML login form
// read the way a browser without JavaScript would (hidden inputs included).

import assert from 'node:assert/strict';
import { fetchWithTimeout } from './issuer.mjs';

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decodes the HTML character references that can appear in attribute values. */
export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, ref) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return ENTITIES[ref.toLowerCase()] ?? m;
  });
}

/** The attributes of one start tag (`<input a="b" c>` → {a: 'b', c: ''}), names lower-cased. */
export function attributes(tag) {
  const inner = tag.replace(/^<\s*[a-z0-9]+/i, '').replace(/\/?>$/, '');
  const attrs = {};
  const re = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of inner.matchAll(re)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/**
 * The form of an HTML page that holds an input named `password`: its method, action (resolved
 * against `pageUrl`) and every named input's value.
 */
export function loginForm(html, pageUrl) {
  for (const m of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)) {
    const inputs = [...m[1].matchAll(/<input\b[^>]*>/gi)].map((i) => attributes(i[0]));
    if (!inputs.some((i) => i.name === 'password')) continue;
    const form = attributes(m[0].match(/^<form\b[^>]*>/i)[0]);
    const fields = {};
    for (const i of inputs) {
      // As a browser does: an unticked checkbox or radio button is not sent.
      const toggle = ['checkbox', 'radio'].includes((i.type ?? '').toLowerCase());
      if (i.name && (!toggle || 'checked' in i)) fields[i.name] = i.value ?? (toggle ? 'on' : '');
    }
    return {
      method: (form.method ?? 'get').toUpperCase(),
      action: new URL(form.action ?? '', pageUrl).href,
      fields,
    };
  }
  throw new Error(`no form with a password input on ${pageUrl}:\n${html.slice(0, 2000)}`);
}

/** A cookie-keeping, non-redirecting HTTP client; all hosts here are 127.0.0.1. */
export class UserAgent {
  /** name → value; cookies ignore ports, as in a browser. */
  cookies = new Map();

  /** One request; redirects are returned, not followed. */
  async request(url, { method = 'GET', form } = {}) {
    const headers = {};
    if (this.cookies.size) {
      headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const r = await fetchWithTimeout(url, { method, headers, body, redirect: 'manual' });
    for (const c of r.headers.getSetCookie()) this.#store(c);
    const location = r.headers.get('location');
    return {
      status: r.status,
      headers: r.headers,
      location: location === null ? null : new URL(location, url),
      text: await r.text(),
      url: String(url),
    };
  }

  #store(setCookie) {
    const [pair, ...attrs] = setCookie.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attrs.some((a) => {
      const [k, v = ''] = a.trim().split('=');
      if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
      if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
      return false;
    });
    if (expired) this.cookies.delete(name);
    else this.cookies.set(name, value);
  }

  /**
   * GET /authorize without a session: checks the 303 to `{issuer}/login?request=...`, loads
   * that page and returns its login form.
   */
  async openLoginPage(authorizationUrl, issuer) {
    const start = await this.request(authorizationUrl);
    assert.equal(start.status, 303, `/authorize should redirect to the login page, got ${start.status}: ${start.text.slice(0, 500)}`);
    assert.ok(start.location, '/authorize redirect has a Location');
    assert.equal(`${start.location.origin}${start.location.pathname}`, `${issuer}/login`);
    assert.ok(start.location.searchParams.get('request'), 'login URL carries request=ID');
    const page = await this.request(start.location);
    assert.equal(page.status, 200, `login page: ${page.status}`);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    return { page, form: loginForm(page.text, page.url) };
  }

  /** Submits a login form as a browser would (hidden inputs included). */
  submitLogin(form, username, password) {
    assert.equal(form.method, 'POST', 'the login form posts (the password never goes into a URL)');
    return this.request(form.action, {
      method: 'POST',
      form: { ...form.fields, username, password },
    });
  }

  /**
   * The whole sign-in: /authorize → login page → POST credentials → the 303 to the redirect
   * URI. Returns that callback URL (with code, state, iss).
   */
  async signIn(authorizationUrl, issuer, { username, password }) {
    const { form } = await this.openLoginPage(authorizationUrl, issuer);
    const done = await this.submitLogin(form, username, password);
    assert.equal(done.status, 303, `successful login should redirect, got ${done.status}: ${done.text.slice(0, 500)}`);
    assert.ok(done.location, 'login redirect has a Location');
    return done.location;
  }
}
