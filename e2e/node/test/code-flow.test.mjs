// Authorization code + PKCE with openid-client: a confidential client (client_secret_basic) and
// a public one (none). The test is the user agent (fetch, manual redirects, the HTML form);
// openid-client is the relying party and validates everything the specs let it.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as client from 'openid-client';
import * as jose from 'jose';
import { discover, fixtureWithUser } from '../lib/fixture.mjs';
import { authorizationRequest, oauthError, signInAndExchange } from '../lib/flows.mjs';
import { loginForm, UserAgent } from '../lib/user-agent.mjs';

describe('authorization code + PKCE, confidential client (client_secret_basic)', () => {
  let f;
  let web;
  let config;
  const signIn = (ua = new UserAgent()) =>
    signInAndExchange(config, ua, { issuer: f.issuer, redirectUri: web.redirectUri, user: f.user });

  before(async () => {
    f = fixtureWithUser();
    web = f.clients.web;
    config = await discover(f.issuer, web.clientId, web.secret);
    // Also verify ID token signatures from the token endpoint against JWKS.
    client.enableNonRepudiationChecks(config);
  });

  it('signs in; openid-client validates state, iss (RFC 9207) and the signed ID token with its nonce', async () => {
    const { callback, checks, tokens } = await signIn();
    assert.equal(`${callback.origin}${callback.pathname}`, web.redirectUri);
    assert.equal(callback.searchParams.get('iss'), f.issuer);
    assert.equal(callback.searchParams.get('state'), checks.expectedState);
    assert.ok(callback.searchParams.get('code'));

    assert.equal(tokens.token_type, 'bearer');
    assert.ok(tokens.access_token);
    assert.ok(tokens.refresh_token, 'a refresh token for offline_access');
    const claims = tokens.claims();
    assert.equal(claims.iss, f.issuer);
    assert.ok([claims.aud].flat().includes(web.clientId));
    assert.equal(claims.nonce, checks.expectedNonce);
    assert.ok(claims.sub);
    assert.ok(claims.exp > Date.now() / 1000);
    assert.equal(jose.decodeProtectedHeader(tokens.id_token).kid, f.kid);
  });

  it('userinfo returns the signed-in user for the access token', async () => {
    const { tokens } = await signIn();
    const sub = tokens.claims().sub;
    // openid-client checks that userinfo's sub is the ID token's.
    const info = await client.fetchUserInfo(config, tokens.access_token, sub);
    assert.equal(info.sub, sub);
    assert.equal(info.email, f.user.email);
    assert.equal(info.email_verified, true);
    assert.equal(info.name, f.user.name);
  });

  it('a code is single use', async () => {
    const { url, checks } = await authorizationRequest(config, { redirectUri: web.redirectUri });
    const callback = await new UserAgent().signIn(url, f.issuer, f.user);
    await client.authorizationCodeGrant(config, callback, checks);
    await assert.rejects(client.authorizationCodeGrant(config, callback, checks), oauthError('invalid_grant'));
  });

  it('a code with the wrong PKCE verifier is refused', async () => {
    const { url, checks } = await authorizationRequest(config, { redirectUri: web.redirectUri });
    const callback = await new UserAgent().signIn(url, f.issuer, f.user);
    const wrong = { ...checks, pkceCodeVerifier: client.randomPKCECodeVerifier() };
    await assert.rejects(client.authorizationCodeGrant(config, callback, wrong), oauthError('invalid_grant'));
  });

  it('refresh rotates the refresh token and the old one is then refused', async () => {
    const { tokens } = await signIn();
    const sub = tokens.claims().sub;
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token);
    assert.ok(refreshed.refresh_token, 'a new refresh token');
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
    const info = await client.fetchUserInfo(config, refreshed.access_token, sub);
    assert.equal(info.sub, sub);
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), oauthError('invalid_grant'));
  });

  it('reusing a rotated refresh token revokes its whole family', async () => {
    const { tokens } = await signIn();
    const rotated = await client.refreshTokenGrant(config, tokens.refresh_token);
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), oauthError('invalid_grant'));
    // The replay may come from a thief holding the newest token too: it stops working.
    await assert.rejects(client.refreshTokenGrant(config, rotated.refresh_token), oauthError('invalid_grant'));
  });

  it('a wrong password answers 401 with the form and the error, and no redirect', async () => {
    const ua = new UserAgent();
    const { url, checks } = await authorizationRequest(config, { redirectUri: web.redirectUri });
    let { form } = await ua.openLoginPage(url, f.issuer);
    // A wrong password and an unknown user look the same (no user enumeration).
    for (const [username, password] of [
      [f.user.username, 'not-the-password'],
      ['nobody-by-this-name', f.user.password],
    ]) {
      const refused = await ua.submitLogin(form, username, password);
      assert.equal(refused.status, 401);
      assert.equal(refused.location, null, 'no redirect after a failed login');
      assert.match(refused.text, /<p class="error" role="alert">Incorrect username or password\.<\/p>/);
      // The form comes back; the next attempt uses it, as a person would.
      form = loginForm(refused.text, form.action);
    }
    const done = await ua.submitLogin(form, f.user.username, f.user.password);
    assert.equal(done.status, 303);
    const tokens = await client.authorizationCodeGrant(config, done.location, checks);
    assert.ok(tokens.claims().sub);
  });

  it('a login post without the CSRF token signs nobody in', async () => {
    const ua = new UserAgent();
    const { url } = await authorizationRequest(config, { redirectUri: web.redirectUri });
    const { form } = await ua.openLoginPage(url, f.issuer);
    const { csrf, ...withoutCsrf } = form.fields;
    assert.ok(csrf, 'the form carries a csrf token');
    const r = await ua.submitLogin({ ...form, fields: withoutCsrf }, f.user.username, f.user.password);
    assert.ok(r.status >= 400 && r.status < 500, `refused with a 4xx, got ${r.status}`);
    assert.equal(r.location, null);
  });

  it('never redirects to an unregistered redirect_uri', async () => {
    const { url } = await authorizationRequest(config, { redirectUri: 'http://127.0.0.1/attacker/callback' });
    const r = await new UserAgent().request(url);
    assert.equal(r.status, 400, `an error page, not a redirect: ${r.status} ${r.location}`);
    assert.equal(r.location, null);
  });

  it('prompt=none without a session returns login_required, which openid-client reports', async () => {
    const { url, checks } = await authorizationRequest(config, {
      redirectUri: web.redirectUri,
      extra: { prompt: 'none' },
    });
    const r = await new UserAgent().request(url);
    assert.equal(r.status, 303);
    assert.equal(`${r.location.origin}${r.location.pathname}`, web.redirectUri);
    await assert.rejects(client.authorizationCodeGrant(config, r.location, checks), (e) => {
      // Raised only after openid-client checked state and iss of the error response.
      assert.ok(e instanceof client.AuthorizationResponseError, `${e.name}: ${e.message}`);
      assert.equal(e.error, 'login_required');
      return true;
    });
  });

  it('a signed-in session skips the form; end_session ends it', async () => {
    const ua = new UserAgent();
    const { tokens } = await signIn(ua);
    // Same browser, new authorization request: straight back to the client with a code.
    const { url, checks } = await authorizationRequest(config, { redirectUri: web.redirectUri });
    const silent = await ua.request(url);
    assert.equal(silent.status, 303);
    assert.equal(`${silent.location.origin}${silent.location.pathname}`, web.redirectUri);
    const again = await client.authorizationCodeGrant(config, silent.location, checks);
    assert.equal(again.claims().sub, tokens.claims().sub);

    const state = client.randomState();
    const logout = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: web.postLogoutRedirectUri,
      state,
    });
    const out = await ua.request(logout);
    assert.equal(out.status, 303, `end_session redirects back: ${out.status} ${out.text.slice(0, 300)}`);
    assert.equal(`${out.location.origin}${out.location.pathname}`, web.postLogoutRedirectUri);
    assert.equal(out.location.searchParams.get('state'), state);
    // Signed out: the next authorization request asks for the password again.
    const next = await authorizationRequest(config, { redirectUri: web.redirectUri });
    await ua.openLoginPage(next.url, f.issuer);
  });
});

describe('authorization code + PKCE, public client (none)', () => {
  let f;
  let pub;
  let config;

  before(async () => {
    f = fixtureWithUser();
    pub = f.clients.public;
    config = await discover(f.issuer, pub.clientId);
    client.enableNonRepudiationChecks(config);
  });

  it('signs in with PKCE and no secret, and refreshes', async () => {
    const { tokens } = await signInAndExchange(config, new UserAgent(), {
      issuer: f.issuer,
      redirectUri: pub.redirectUri,
      user: f.user,
    });
    const claims = tokens.claims();
    assert.ok([claims.aud].flat().includes(pub.clientId));
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.email, f.user.email);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  });

  it('an authorization request without PKCE gets no code', async () => {
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: pub.redirectUri,
      scope: 'openid',
      state: client.randomState(),
      nonce: client.randomNonce(),
    });
    const r = await new UserAgent().request(url);
    if (r.location && `${r.location.origin}${r.location.pathname}` === pub.redirectUri) {
      // RFC 6749 4.1.2.1: errors go back to a valid redirect URI.
      assert.equal(r.location.searchParams.get('error'), 'invalid_request');
      assert.equal(r.location.searchParams.get('code'), null);
    } else {
      assert.equal(r.status, 400, `refused, not sent to ${r.location}`);
    }
  });

  it('a public client cannot use a code without its verifier', async () => {
    const { url, checks } = await authorizationRequest(config, { redirectUri: pub.redirectUri });
    const callback = await new UserAgent().signIn(url, f.issuer, f.user);
    const { pkceCodeVerifier, ...withoutVerifier } = checks;
    assert.ok(pkceCodeVerifier);
    await assert.rejects(client.authorizationCodeGrant(config, callback, withoutVerifier), (e) => {
      // RFC 7636 4.6 names invalid_grant; a missing parameter may also be invalid_request.
      assert.ok(e instanceof client.ResponseBodyError, `${e.name}: ${e.message}`);
      assert.ok(['invalid_grant', 'invalid_request'].includes(e.error), e.error);
      return true;
    });
  });
});
