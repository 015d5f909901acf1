-- When `irn.in_doubt` was published for a job (once per in-doubt period): the delayed re-checks
-- that settle it must not publish it again. Cleared when the job is claimed afresh.
ALTER TABLE jobs ADD COLUMN in_doubt_reported_at timestamptz;
