-- Palisade auth-server schema, version 2: users and the authorization-code flow.
-- Expand only (new tables); 0001 is unchanged, so the previous release keeps working.
-- Codes, refresh tokens and session cookies are stored only as hex SHA-256 hashes.

CREATE TABLE IF NOT EXISTS users (
    username      TEXT PRIMARY KEY,
    sub           TEXT NOT NULL UNIQUE,
    -- argon2id PHC string, peppered; NULL means the user cannot sign in with a password.
    password_hash TEXT,
    email         TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT false,
    name          TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Authorization requests parked while the user signs in.
CREATE TABLE IF NOT EXISTS authorization_requests (
    id         TEXT PRIMARY KEY,
    request    JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS authorization_requests_expires_at ON authorization_requests (expires_at);

-- Authorization codes; used ones stay until expiry so that a replay is recognised.
CREATE TABLE IF NOT EXISTS authorization_codes (
    code_hash  TEXT PRIMARY KEY,
    grant_data JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS authorization_codes_expires_at ON authorization_codes (expires_at);

-- Refresh tokens, rotated on every use; a family is one chain of rotations.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    grant_data JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Families revoked by reuse detection, logout or RFC 7009 revocation.
CREATE TABLE IF NOT EXISTS revoked_refresh_families (
    family_id  TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Browser sessions, keyed by the hash of the cookie token.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash   TEXT PRIMARY KEY,
    session_data JSONB NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
