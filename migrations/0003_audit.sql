-- Palisade auth-server schema, version 3: the audit trail.
-- Expand only (a new table); earlier releases never read it.
-- Records hold who, what, which client, the address, the outcome and the time; never a secret.

CREATE TABLE IF NOT EXISTS audit_events (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    event     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    subject   TEXT,
    username  TEXT,
    client_id TEXT,
    address   TEXT,
    detail    TEXT,
    instance  TEXT
);
-- Retention purges by time; the admin API pages newest first, often by user or client.
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_events_subject ON audit_events (subject, id);
CREATE INDEX IF NOT EXISTS audit_events_client_id ON audit_events (client_id, id);
