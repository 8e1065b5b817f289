// The relying party's side of the authorization code flow with PKCE, as openid-client does it.

import * as client from 'openid-client';

/**
 * Builds an authorization request with fresh PKCE (S256), state and nonce. Returns the URL and
 * the checks the callback must pass.
 */
export async function authorizationRequest(config, { redirectUri, scope = 'openid profile email offline_access', extra = {} }) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(pkceCodeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return {
    url,
    checks: { pkceCodeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
  };
}

/**
 * Signs `user` in through `ua` and exchanges the code with openid-client, which validates the
 * callback (state, iss per RFC 9207), the token response and the ID token (nonce; and its
 * signature when non-repudiation checks are enabled on `config`).
 */
export async function signInAndExchange(config, ua, { issuer, redirectUri, user, scope }) {
  const { url, checks } = await authorizationRequest(config, { redirectUri, scope });
  const callback = await ua.signIn(url, issuer, user);
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  return { callback, checks, tokens };
}

/** Predicate for assert.rejects: an OAuth error response with `error` = `code`. */
export function oauthError(code) {
  return (e) => {
    if (!(e instanceof client.ResponseBodyError)) {
      throw new Error(`expected OAuth error ${code}, got ${e?.name}: ${e?.message}`, { cause: e });
    }
    if (e.error !== code) {
      throw new Error(`expected OAuth error ${code}, got ${e.error} (${e.error_description})`, { cause: e });
    }
    return true;
  };
}
