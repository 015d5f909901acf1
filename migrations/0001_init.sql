-- Jobs: one row per document key (seller GSTIN, doc type, doc number, financial year).
-- The unique doc_key is what makes a re-sent or redelivered invoice resolve to the stored IRN.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    doc_key         text NOT NULL UNIQUE,
    gstin           text NOT NULL,
    doc_type        text NOT NULL,
    doc_number      text NOT NULL,
    financial_year  text NOT NULL,
    doc_date        text,
    provider        text,
    -- pending | in_flight | in_doubt | generated | rejected | failed | cancelled
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    -- A lease, not a lock: no transaction stays open across the IRP call. While lease_until is
    -- in the future only lease_owner may call generate for this document.
    lease_owner     uuid,
    lease_until     timestamptz,
    request         jsonb,
    response        jsonb,
    irn             text,
    ack_no          text,
    ack_dt          text,
    signed_invoice  text,
    signed_qr_code  text,
    ewb_no          text,
    ewb_dt          text,
    ewb_valid_till  text,
    duplicate       boolean NOT NULL DEFAULT false,
    cancel_date     text,
    last_error      jsonb,
    first_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_irn ON jobs (irn);
CREATE INDEX jobs_status ON jobs (status, updated_at);

-- One cached IRP session per (provider, GSTIN), shared by every worker process.
-- token_enc / sek_enc are AES-256-GCM ciphertexts (nonce || ciphertext) under EINVOICE_TOKEN_KEY.
CREATE TABLE auth_tokens (
    provider         text NOT NULL,
    gstin            text NOT NULL,
    token_enc        bytea,
    sek_enc          bytea,
    expires_at       timestamptz,
    -- Single-flight refresh across processes: whoever sets this owns the refresh until then.
    refreshing_until timestamptz,
    refresh_count    bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, gstin)
);

-- Transactional outbox: events are written with the state change, published afterwards.
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    event_type     text NOT NULL,
    reply_to       text,
    correlation_id text,
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;

-- A GSTIN whose credentials or configuration the IRP refused: its work waits until paused_until.
CREATE TABLE gstin_pauses (
    gstin        text PRIMARY KEY,
    paused_until timestamptz NOT NULL,
    reason       jsonb NOT NULL
);

-- GSTIN details looked up at the IRP, cached for EINVOICE_GSTIN_CACHE_SECS.
CREATE TABLE gstin_cache (
    gstin      text PRIMARY KEY,
    details    jsonb NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now()
);
