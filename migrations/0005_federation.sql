-- Palisade auth-server schema, version 5: upstream OpenID Connect federation.
-- Expand only (new tables and an index); earlier tables are unchanged, so the previous release
-- keeps working on this schema during a rollout and after a rollback.

-- Which local user an upstream account signs in as: (upstream name, upstream subject) → sub.
-- Deleting a user deletes their links; a changed sub follows.
CREATE TABLE IF NOT EXISTS upstream_links (
    upstream     TEXT NOT NULL,
    upstream_sub TEXT NOT NULL,
    sub          TEXT NOT NULL REFERENCES users (sub) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (upstream, upstream_sub)
);
CREATE INDEX IF NOT EXISTS upstream_links_sub ON upstream_links (sub);

-- Sign-ins in flight at an upstream, keyed by the hash of their random `state` and removed by
-- the callback that uses them (single use). Holds the nonce, the PKCE verifier and the parked
-- authorization request's id; rows past expires_at are purged.
CREATE TABLE IF NOT EXISTS upstream_logins (
    state_hash TEXT PRIMARY KEY,
    login      JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS upstream_logins_expires_at ON upstream_logins (expires_at);

-- Linking by verified email looks users up by address, in any case.
CREATE INDEX IF NOT EXISTS users_email_lower ON users (lower(email));
