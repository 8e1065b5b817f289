-- Palisade auth-server schema, version 4: the TOTP second factor.
-- Expand only (a nullable column and new tables), so the previous release keeps working.

-- Set by an administrator: under the Optional policy this user must enrol an authenticator.
-- NULL (rows written by an older release) reads as false.
ALTER TABLE users ADD COLUMN IF NOT EXISTS mfa_required BOOLEAN DEFAULT false;

-- One TOTP authenticator per user. The secret is AES-256-GCM sealed with a key derived from
-- the internal Secret (never stored in clear); recovery codes are stored as hex SHA-256 and
-- removed when used. last_step is the last accepted 30-second step: a code is accepted once.
-- failures counts wrong codes since the last accepted one (across sign-ins), for the
-- per-user back-off.
CREATE TABLE IF NOT EXISTS user_totp (
    sub             TEXT PRIMARY KEY REFERENCES users (sub) ON DELETE CASCADE,
    secret_sealed   TEXT NOT NULL,
    last_step       BIGINT,
    recovery_hashes TEXT[] NOT NULL DEFAULT '{}',
    enrolled_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at TIMESTAMPTZ
);

-- Sign-ins whose password was verified, parked while the second factor is asked for.
CREATE TABLE IF NOT EXISTS mfa_sign_ins (
    id         TEXT PRIMARY KEY,
    sign_in    JSONB NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS mfa_sign_ins_expires_at ON mfa_sign_ins (expires_at);
