-- Issue 25, the operator console's last two parts.
--
-- A document the business registered (or cancelled) on the portal by hand: an operator marks its
-- job `registered_outside` / `cancelled_outside` (jobs.status is text: no constraint to change).
-- `outside` keeps who marked it, when, why and the operator action's id (the audit row is in
-- operator_actions); the IRN / ack / e-way bill number given go to the job's own columns.
ALTER TABLE jobs ADD COLUMN outside jsonb;

-- The job's IRP calls, newest last, at most 20: written by the statement that stores each
-- attempt's outcome (no round trip of its own), read by the console's job page.
ALTER TABLE jobs ADD COLUMN attempt_log jsonb;

-- The IRN register lists a marked document even without its IRN (jobs_gstin_period covers the
-- ones with an IRN).
CREATE INDEX jobs_outside_period ON jobs (gstin, (right(doc_date, 7)))
    WHERE irn IS NULL AND status IN ('registered_outside', 'cancelled_outside');
