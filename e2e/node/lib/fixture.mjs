// What run.mjs set up for the tests (issuer, clients, user), and openid-client configurations
// for it.

import * as client from 'openid-client';
import { readFileSync } from 'node:fs';

/** Seconds openid-client waits for any one HTTP response before failing. */
export const HTTP_TIMEOUT_SECONDS = 10;

/** The fixture written by run.mjs. */
export function fixture() {
  const file = process.env.PALISADE_E2E_FIXTURE;
  if (!file) {
    throw new Error('PALISADE_E2E_FIXTURE is not set: run these tests with scripts/test-node');
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The fixture, failing when the test user could not be created (no users API). */
export function fixtureWithUser() {
  const f = fixture();
  if (f.userSetupError) {
    throw new Error(`this server could not create the test user: ${f.userSetupError}`);
  }
  return f;
}

/**
 * Discovers the issuer with openid-client for a client (`secret` undefined → public client,
 * `none`). Plain http is allowed because the test issuer runs on http://127.0.0.1.
 */
export function discover(issuer, clientId, secret) {
  const auth = secret === undefined ? client.None() : client.ClientSecretBasic(secret);
  return client.discovery(new URL(issuer), clientId, undefined, auth, {
    execute: [client.allowInsecureRequests],
    timeout: HTTP_TIMEOUT_SECONDS,
  });
}
