-- Palisade auth-server schema, version 1.
-- Migrations follow expand-then-contract: a release only adds (tables, nullable columns,
-- indexes); removals happen a release later, so the previous revision keeps working on the
-- migrated schema during a rollout and after a rollback.

CREATE TABLE IF NOT EXISTS clients (
    client_id    TEXT PRIMARY KEY,
    -- The wire ClientRegistration (palisade-wire); holds only a hash of the client secret.
    registration JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Access tokens revoked before their expiry (RFC 7009); rows past expires_at can be purged.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at ON revoked_tokens (expires_at);
