-- job.status and irn.generate_batch.
--
-- The request_id of the command that last claimed a job, so that `job.status` by request_id
-- finds a job before any event was written for it (a first attempt still in flight). Older
-- request_ids of the same job are found through its events (outbox_request_id below).
ALTER TABLE jobs ADD COLUMN request_id text;
CREATE INDEX jobs_request_id ON jobs (request_id) WHERE request_id IS NOT NULL;

-- `job.status` (and `jobs show`) read a job's events, and events by request_id; a batch member's
-- answer is found by its message id (members' message ids start with "batch:"). Partial
-- expression indexes: only events that have the value are indexed.
CREATE INDEX outbox_job_id ON outbox ((payload->>'job_id')) WHERE payload->>'job_id' IS NOT NULL;
CREATE INDEX outbox_request_id ON outbox ((payload->>'request_id')) WHERE payload->>'request_id' IS NOT NULL;
CREATE INDEX outbox_batch_member ON outbox ((payload->>'command_message_id'))
    WHERE payload->>'command_message_id' LIKE 'batch:%';

-- One row per irn.generate_batch, keyed by its batch_id (else the command's AMQP message_id):
-- a re-sent or redelivered batch finds its row and is not fanned out twice.
CREATE TABLE batches (
    id                 text PRIMARY KEY,
    gstin              text NOT NULL,
    total              integer NOT NULL,
    -- SHA-256 of the gstin and invoices: the same batch_id with other content is refused.
    content_sha256     bytea NOT NULL,
    -- The batch command's ids, copied into batch.completed, which a member's worker writes.
    request_id         text,
    command_message_id text,
    correlation_id     text,
    reply_to           text,
    -- Members whose final answer is recorded; the batch completes when settled = total.
    settled            integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Every member command confirmed by the broker.
    fanned_out_at      timestamptz,
    -- Set once, by the transaction that writes batch.completed (exactly one per batch).
    completed_at       timestamptz,
    summary            jsonb
);

-- One row per invoice of a batch; the outcome columns are filled from the member's first final
-- event (irn.generated, irn.details, irn.rejected, irn.failed), once.
CREATE TABLE batch_members (
    batch_id    text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    idx         integer NOT NULL,
    message_id  text NOT NULL,
    doc_type    text,
    doc_number  text,
    doc_date    text,
    outcome     text,
    event_type  text,
    event_id    uuid,
    job_id      uuid,
    irn         text,
    ack_no      text,
    errors      jsonb,
    settled_at  timestamptz,
    PRIMARY KEY (batch_id, idx)
);
