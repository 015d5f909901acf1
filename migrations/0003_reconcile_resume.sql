-- Reconciliation runs, continued: what a redelivered command needs to find and resume its run.
-- The command's AMQP message_id (the scheduler sets it to the run id): a redelivered or
-- rescheduled command finds its own run by it.
ALTER TABLE reconcile_runs ADD COLUMN command_id text UNIQUE;
-- Scheduled runs: set once the command is confirmed by the broker, so a run whose command was
-- never published (the worker died in between) is published again by a later tick.
ALTER TABLE reconcile_runs ADD COLUMN published_at timestamptz;
-- Per-GSTIN, per-day failures the run reports (a non-transient IRP error for one day).
ALTER TABLE reconcile_runs ADD COLUMN errors jsonb NOT NULL DEFAULT '[]'::jsonb;
-- The counts reported in `reconcile.completed`.
ALTER TABLE reconcile_runs ADD COLUMN summary jsonb;
CREATE INDEX reconcile_runs_running ON reconcile_runs (from_date, to_date) WHERE status = 'running';
