// The machine-to-machine flow with openid-client: client_credentials with client_secret_basic,
// the JWT access token verified against JWKS, then introspection and revocation.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as client from 'openid-client';
import * as jose from 'jose';
import { discover, fixture } from '../lib/fixture.mjs';

describe('client_credentials', () => {
  const f = fixture();
  const { clientId, secret } = f.clients.machine;
  let config;
  before(async () => {
    config = await discover(f.issuer, clientId, secret);
  });

  it('issues an access token signed by the published key', async () => {
    const tokens = await client.clientCredentialsGrant(config, { scope: 'api' });
    assert.equal(tokens.token_type, 'bearer');
    assert.equal(tokens.scope, 'api');
    assert.ok(tokens.expires_in > 0);
    assert.equal(tokens.refresh_token, undefined, 'no refresh token without a user');
    const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri), {
      timeoutDuration: 10_000,
    });
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
      issuer: f.issuer,
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.kid, f.kid);
    assert.equal(payload.client_id, clientId);
    assert.equal(payload.sub, clientId);
    assert.equal(payload.scope, 'api');
  });

  it('introspects the token as active, and as inactive once revoked', async () => {
    const { access_token } = await client.clientCredentialsGrant(config, { scope: 'api' });
    const active = await client.tokenIntrospection(config, access_token);
    assert.equal(active.active, true);
    assert.equal(active.client_id, clientId);
    assert.equal(active.scope, 'api');
    await client.tokenRevocation(config, access_token);
    const inactive = await client.tokenIntrospection(config, access_token);
    assert.deepEqual({ ...inactive }, { active: false });
  });

  it('refuses a wrong secret with 401 invalid_client and a Basic challenge', async () => {
    const wrong = await discover(f.issuer, clientId, 'not-the-secret');
    let error;
    await client.clientCredentialsGrant(wrong, { scope: 'api' }).catch((e) => {
      error = e;
    });
    // RFC 6749 5.2: 401 with WWW-Authenticate for Basic; openid-client reports the challenge.
    assert.ok(error instanceof client.WWWAuthenticateChallengeError, `${error?.name}: ${error?.message}`);
    assert.equal(error.status, 401);
    assert.equal(error.cause[0].scheme, 'basic');
    assert.equal((await error.response.json()).error, 'invalid_client');
  });

  it('refuses a scope the client was not registered for with invalid_scope', async () => {
    await assert.rejects(client.clientCredentialsGrant(config, { scope: 'api admin' }), (e) => {
      assert.ok(e instanceof client.ResponseBodyError, `${e.name}: ${e.message}`);
      assert.equal(e.error, 'invalid_scope');
      return true;
    });
  });

  it('refuses client_credentials for a client registered without that grant', async () => {
    const web = await discover(f.issuer, f.clients.web.clientId, f.clients.web.secret);
    await assert.rejects(client.clientCredentialsGrant(web), (e) => {
      assert.ok(e instanceof client.ResponseBodyError, `${e.name}: ${e.message}`);
      assert.equal(e.error, 'unauthorized_client');
      return true;
    });
  });
});
