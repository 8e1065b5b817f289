// Starts a palisade-auth-server process on free 127.0.0.1 ports, the way a pod runs it: an
// internal-secret directory (admin token, cookie key, password pepper) and a signing key set
// file, no DATABASE_URL (in-memory store). Also the admin API calls the tests need.

import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A random base64url token of `bytes` random bytes. */
export function randomToken(bytes = 32) {
  return randomBytes(bytes).toString('base64url');
}

/** The client-secret hash the admin API expects (wire/src/registration.rs `hash_client_secret`). */
export function hashClientSecret(secret) {
  return `sha256:${createHash('sha256').update(secret).digest('base64url')}`;
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A key set (wire/src/keyset.rs) with one ES256 key that signs from an hour ago for a day,
 * generated here so the server runs from a file as it does in a pod.
 */
export function makeKeySet(now = Date.now()) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const at = (h) => new Date(now + h * 3600_000).toISOString();
  const kid = `e2e-${randomToken(6)}`;
  return {
    kid,
    keySet: {
      keys: [
        {
          kid,
          alg: 'ES256',
          privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
          publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
          publishAt: at(-2),
          activateAt: at(-1),
          retireAt: at(24),
          deleteAt: at(48),
        },
      ],
    },
  };
}

/** `fetch` that gives up after `ms` milliseconds, so a hung server fails the test fast. */
export function fetchWithTimeout(url, init = {}, ms = 10_000) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
}

async function waitReady(issuer, child, logFile, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(
        `auth-server exited with ${child.exitCode} before it was ready; log ${logFile}:\n${tail(logFile)}`,
      );
    }
    try {
      const r = await fetchWithTimeout(`${issuer}/readyz`, {}, 1000);
      if (r.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw new Error(`auth-server not ready within ${deadlineMs} ms; log ${logFile}:\n${tail(logFile)}`);
}

/** The last `lines` lines of a file (for failure messages). */
export function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts `bin` and waits for /readyz. Returns { issuer, adminUrl, adminToken, kid, dir, logFile,
 * stop() }. Retries on a port taken between choosing and binding it.
 */
export async function startIssuer(bin, { readyTimeoutMs = 30_000, env: extraEnv = {} } = {}) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-node-e2e-'));
    const internalDir = join(dir, 'internal');
    mkdirSync(internalDir, { mode: 0o700 });
    const adminToken = randomToken(32);
    writeFileSync(join(internalDir, 'admin-token'), adminToken, { mode: 0o600 });
    writeFileSync(join(internalDir, 'cookie-key'), randomToken(32), { mode: 0o600 });
    writeFileSync(join(internalDir, 'password-pepper'), randomToken(32), { mode: 0o600 });
    const { kid, keySet } = makeKeySet();
    const keysetFile = join(dir, 'keyset.json');
    writeFileSync(keysetFile, JSON.stringify(keySet, null, 2), { mode: 0o600 });

    const [publicPort, adminPort] = [await freePort(), await freePort()];
    const issuer = `http://127.0.0.1:${publicPort}`;
    const logFile = join(dir, 'auth-server.log');
    const log = createWriteStream(logFile);
    // Only what the server needs: no DATABASE_URL/REDIS_URL leaking in from the caller.
    const env = {
      PATH: process.env.PATH,
      PALISADE_ISSUER: issuer,
      PALISADE_PUBLIC_ADDR: `127.0.0.1:${publicPort}`,
      PALISADE_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      PALISADE_INTERNAL_DIR: internalDir,
      PALISADE_KEYSET_FILE: keysetFile,
      PALISADE_LOG_LEVEL: 'info',
      ...extraEnv,
    };
    const child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    const spawned = new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
        if (!done) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      log.end();
    };
    try {
      await spawned;
      await waitReady(issuer, child, logFile, readyTimeoutMs);
      return {
        issuer,
        adminUrl: `http://127.0.0.1:${adminPort}`,
        adminToken,
        kid,
        dir,
        logFile,
        pid: child.pid,
        stop,
      };
    } catch (e) {
      lastError = e;
      await stop();
      if (!/Address already in use|AddrInUse/i.test(tail(logFile))) break;
    }
  }
  throw lastError;
}

async function adminPut(admin, path, body) {
  const r = await fetchWithTimeout(`${admin.adminUrl}${path}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${admin.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) {
    throw new Error(`PUT ${path} answered ${r.status}: ${await r.text()}`);
  }
  return r;
}

/**
 * Registers a client (wire/src/registration.rs ClientRegistration). `secret` is hashed here;
 * omit it for a public client.
 */
export async function registerClient(admin, { clientId, secret, ...rest }) {
  const isPublic = secret === undefined;
  const body = {
    clientId,
    clientName: rest.clientName ?? clientId,
    redirectUris: rest.redirectUris ?? [],
    postLogoutRedirectUris: rest.postLogoutRedirectUris ?? [],
    grantTypes: rest.grantTypes,
    scopes: rest.scopes ?? [],
    tokenEndpointAuthMethod: isPublic ? 'none' : (rest.tokenEndpointAuthMethod ?? 'client_secret_basic'),
    public: isPublic,
  };
  if (!isPublic) body.clientSecretHash = hashClientSecret(secret);
  await adminPut(admin, `/admin/clients/${encodeURIComponent(clientId)}`, body);
}

/** Creates or replaces a user through `PUT /admin/users/{username}`. */
export async function registerUser(admin, { username, password, email, emailVerified = true, name, mfaRequired = false }) {
  await adminPut(admin, `/admin/users/${encodeURIComponent(username)}`, {
    password,
    email,
    emailVerified,
    name,
    mfaRequired,
  });
}
