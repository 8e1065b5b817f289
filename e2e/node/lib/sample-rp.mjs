// A tiny sample relying party on 127.0.0.1, the kind of web application a team would put in
// front of Palisade: /start sends the browser to /authorize with PKCE, /callback exchanges the
// code with openid-client and shows who signed in. Sessions live in memory, keyed by a cookie.

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import * as client from 'openid-client';
import { authorizationRequest } from './flows.mjs';

const COOKIE = 'rp_session';

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res, status, title, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`);
}

function sessionId(req) {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === COOKIE) return v;
  }
  return null;
}

/**
 * Binds the relying party on a free 127.0.0.1 port. Register `redirectUri` for `clientId`, then
 * call `configure(config)` with its openid-client configuration before sending a browser to
 * `${url}/start`.
 */
export async function startSampleRp() {
  const sessions = new Map();
  let config;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    try {
      if (url.pathname === '/start') {
        const sid = randomBytes(24).toString('base64url');
        const { url: authorize, checks } = await authorizationRequest(config, {
          redirectUri: redirectUri(),
          scope: 'openid profile email',
        });
        sessions.set(sid, checks);
        res.writeHead(302, {
          location: authorize.href,
          'set-cookie': `${COOKIE}=${sid}; Path=/; HttpOnly; SameSite=Lax`,
          'cache-control': 'no-store',
        });
        res.end();
      } else if (url.pathname === '/callback') {
        const checks = sessions.get(sessionId(req));
        if (!checks) return page(res, 400, 'No session', '<p id="error">No sign-in in progress.</p>');
        sessions.delete(sessionId(req));
        const tokens = await client.authorizationCodeGrant(config, url, checks);
        const { sub } = tokens.claims();
        const info = await client.fetchUserInfo(config, tokens.access_token, sub);
        page(
          res,
          200,
          'Signed in',
          `<h1>Signed in</h1><p>Signed in as <span id="sub">${escapeHtml(sub)}</span>: ` +
            `<span id="name">${escapeHtml(info.name ?? '')}</span> ` +
            `&lt;<span id="email">${escapeHtml(info.email ?? '')}</span>&gt;</p>`,
        );
      } else if (url.pathname === '/js-check') {
        // Shows "on" only when the browser runs scripts.
        page(res, 200, 'JS check', '<p id="js">off</p><script>document.getElementById("js").textContent = "on"</script>');
      } else {
        page(res, 404, 'Not found', '<p>Not found</p>');
      }
    } catch (e) {
      page(res, 500, 'Sign-in failed', `<p id="error">${escapeHtml(`${e.name}: ${e.code ?? ''} ${e.message}`)}</p>`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  const redirectUri = () => `${base}/callback`;
  return {
    url: base,
    redirectUri: redirectUri(),
    configure(c) {
      config = c;
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
