// Discovery and JWKS through openid-client, which checks the metadata strictly (issuer
// identical to the URL discovered, required members present and well-typed).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as client from 'openid-client';
import { discover, fixture, HTTP_TIMEOUT_SECONDS } from '../lib/fixture.mjs';
import { fetchWithTimeout } from '../lib/issuer.mjs';

describe('discovery', () => {
  const f = fixture();

  it('passes openid-client strict metadata checks and advertises the code flow with PKCE', async () => {
    const config = await discover(f.issuer, f.clients.web.clientId, f.clients.web.secret);
    const md = config.serverMetadata();
    assert.equal(md.issuer, f.issuer);
    assert.equal(md.authorization_endpoint, `${f.issuer}/authorize`);
    assert.equal(md.token_endpoint, `${f.issuer}/token`);
    assert.equal(md.userinfo_endpoint, `${f.issuer}/userinfo`);
    assert.equal(md.jwks_uri, `${f.issuer}/jwks`);
    assert.equal(md.supportsPKCE('S256'), true);
    assert.equal(md.supportsPKCE('plain'), false, 'plain PKCE is not offered');
    assert.deepEqual(md.response_types_supported, ['code']);
    assert.equal(md.authorization_response_iss_parameter_supported, true);
    assert.ok(md.id_token_signing_alg_values_supported.includes('ES256'));
    for (const g of ['authorization_code', 'refresh_token', 'client_credentials']) {
      assert.ok(md.grant_types_supported.includes(g), `grant ${g} advertised`);
    }
    for (const m of ['client_secret_basic', 'none']) {
      assert.ok(md.token_endpoint_auth_methods_supported.includes(m), `auth method ${m} advertised`);
    }
  });

  it('is refused by openid-client when served for another issuer URL', async () => {
    // As if a proxy served this issuer's document under /tenant-b: the issuer inside must
    // equal the URL discovered, so openid-client refuses it.
    const other = `${f.issuer}/tenant-b`;
    const discovery = client.discovery(new URL(other), f.clients.web.clientId, undefined, undefined, {
      execute: [client.allowInsecureRequests],
      timeout: HTTP_TIMEOUT_SECONDS,
      [client.customFetch]: (url, options) => fetch(String(url).replace(other, f.issuer), options),
    });
    await assert.rejects(discovery, (e) => {
      assert.equal(e.code, 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED', `${e.code}: ${e.message}`);
      return true;
    });
  });

  it('publishes the key set public key in JWKS and nothing private', async () => {
    const config = await discover(f.issuer, f.clients.web.clientId, f.clients.web.secret);
    const r = await fetchWithTimeout(config.serverMetadata().jwks_uri);
    assert.equal(r.status, 200);
    const { keys } = await r.json();
    const key = keys.find((k) => k.kid === f.kid);
    assert.ok(key, `kid ${f.kid} of the key set file is published: ${JSON.stringify(keys)}`);
    assert.equal(key.kty, 'EC');
    assert.equal(key.crv, 'P-256');
    for (const k of keys) assert.equal(k.d, undefined, 'no private key material in JWKS');
  });
});
