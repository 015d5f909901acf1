-- The operator console (issue 25).
--
-- Every operator action (retry, unpause, ...) taken in the console: who, when, on what filter,
-- how many documents, why. Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, so the
-- trail an auditor reads is the one that was written (retention never prunes it).
CREATE TABLE operator_actions (
    id         bigserial PRIMARY KEY,
    action_id  uuid NOT NULL UNIQUE,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    role       text NOT NULL,
    -- retry | unpause | ...
    action     text NOT NULL,
    -- The search filter (or the one job / GSTIN) the action was confirmed for.
    filter     jsonb NOT NULL,
    -- Documents the confirmation page said it would touch, and those it did.
    count      integer NOT NULL,
    done       integer NOT NULL,
    reason     text,
    job_ids    uuid[] NOT NULL DEFAULT '{}',
    result     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX operator_actions_at ON operator_actions (at DESC, id DESC);

CREATE FUNCTION operator_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_actions is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER operator_actions_no_update BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION operator_actions_append_only();
CREATE TRIGGER operator_actions_no_truncate BEFORE TRUNCATE ON operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION operator_actions_append_only();

-- The console's search keys: newest first by keyset (updated_at, id), and the business's
-- identifiers (the IRN has jobs_irn, the request_id jobs_request_id already).
CREATE INDEX jobs_updated_id ON jobs (updated_at DESC, id DESC);
CREATE INDEX jobs_doc_number ON jobs (upper(doc_number));
CREATE INDEX jobs_ewb_no ON jobs (ewb_no) WHERE ewb_no IS NOT NULL;
CREATE INDEX jobs_gstin_updated ON jobs (gstin, updated_at DESC, id DESC);
-- The IRN register: a GSTIN's documents of a month (doc_date is dd/mm/yyyy text).
CREATE INDEX jobs_gstin_period ON jobs (gstin, (right(doc_date, 7))) WHERE irn IS NOT NULL;
CREATE INDEX batch_members_job ON batch_members (batch_id, job_id);
