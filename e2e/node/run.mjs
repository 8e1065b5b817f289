// Runs the relying-party tests: starts one auth-server (PALISADE_AUTH_SERVER_BIN), registers
// the test clients and user through its admin API, runs `node --test` on test/*.test.mjs with
// the fixture in PALISADE_E2E_FIXTURE, and stops the server. Called by scripts/test-node.
//
// Usage: node run.mjs [test files...]   (default: every test/*.test.mjs)

import { spawn } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomToken, registerClient, registerUser, startIssuer, tail } from './lib/issuer.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = process.env.PALISADE_AUTH_SERVER_BIN;
if (!bin) {
  console.error('PALISADE_AUTH_SERVER_BIN must name the palisade-auth-server binary');
  process.exit(2);
}

const server = await startIssuer(bin);
console.log(`auth-server ${bin} (pid ${server.pid}) serving ${server.issuer}; log ${server.logFile}`);

let status = 1;
try {
  const scopes = ['openid', 'profile', 'email', 'offline_access', 'api'];
  const clients = {
    machine: { clientId: 'e2e-machine', secret: randomToken(32) },
    // Redirect URIs the fetch-based user agent never dereferences: it reads them from Location.
    web: {
      clientId: 'e2e-web',
      secret: randomToken(32),
      redirectUri: 'http://127.0.0.1/e2e-web/callback',
      postLogoutRedirectUri: 'http://127.0.0.1/e2e-web/signed-out',
    },
    public: { clientId: 'e2e-public', redirectUri: 'http://127.0.0.1/e2e-public/callback' },
  };
  await registerClient(server, {
    clientId: clients.machine.clientId,
    secret: clients.machine.secret,
    grantTypes: ['client_credentials'],
    scopes: ['api'],
  });
  await registerClient(server, {
    clientId: clients.web.clientId,
    secret: clients.web.secret,
    redirectUris: [clients.web.redirectUri],
    postLogoutRedirectUris: [clients.web.postLogoutRedirectUri],
    grantTypes: ['authorization_code', 'refresh_token'],
    scopes,
  });
  await registerClient(server, {
    clientId: clients.public.clientId,
    redirectUris: [clients.public.redirectUri],
    grantTypes: ['authorization_code', 'refresh_token'],
    scopes,
  });

  const user = {
    username: 'alice',
    password: `pw-${randomToken(12)}`,
    email: 'alice@example.test',
    name: 'Alice Example',
  };
  // A server without the users API still runs the tests that need no user; the user-flow
  // tests then fail with this message instead of an unrelated one.
  let userSetupError = null;
  try {
    await registerUser(server, user);
  } catch (e) {
    userSetupError = String(e.message ?? e);
    console.log(`could not create the test user: ${userSetupError}`);
  }

  const fixtureFile = join(server.dir, 'fixture.json');
  writeFileSync(
    fixtureFile,
    JSON.stringify(
      {
        issuer: server.issuer,
        adminUrl: server.adminUrl,
        adminToken: server.adminToken,
        kid: server.kid,
        clients,
        user,
        userSetupError,
      },
      null,
      2,
    ),
    { mode: 0o600 },
  );

  const args = process.argv.slice(2);
  const files = args.length
    ? args.map((f) => resolve(f))
    : readdirSync(join(here, 'test'))
        .filter((f) => f.endsWith('.test.mjs'))
        .sort()
        .map((f) => join(here, 'test', f));
  const child = spawn(
    process.execPath,
    [
      '--test',
      '--test-reporter=spec',
      // One file at a time: two cores are shared, and the browser is heavy.
      '--test-concurrency=1',
      // No test may hang CI: every test has a hard upper bound.
      '--test-timeout=90000',
      ...files,
    ],
    { stdio: 'inherit', cwd: here, env: { ...process.env, PALISADE_E2E_FIXTURE: fixtureFile } },
  );
  // Tests have their own timeouts; this catches a test process that never exits.
  const deadlineMs = Number(process.env.PALISADE_NODE_TEST_DEADLINE_SECONDS || 900) * 1000;
  const watchdog = setTimeout(() => {
    console.error(`node --test still running after ${deadlineMs / 1000} s: killing it`);
    child.kill('SIGKILL');
  }, deadlineMs);
  status = await new Promise((res) => child.on('exit', (code, signal) => res(code ?? (signal ? 1 : 0))));
  clearTimeout(watchdog);
} finally {
  await server.stop();
  if (status !== 0) {
    console.log(`\nlast lines of the auth-server log (${server.logFile}):\n${tail(server.logFile)}`);
  } else {
    rmSync(server.dir, { recursive: true, force: true });
  }
}
process.exit(status);
