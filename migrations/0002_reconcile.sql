-- Reconciliation runs (rejected IRNs and in-doubt jobs): a durable record per run.
CREATE TABLE reconcile_runs (
    id           uuid PRIMARY KEY,
    -- The scheduler's tick (or NULL for a run asked for by hand): unique, so several workers
    -- with the same schedule produce one run per tick.
    tick         timestamptz UNIQUE,
    gstins       text[] NOT NULL,
    from_date    date NOT NULL,
    to_date      date NOT NULL,
    status       text NOT NULL, -- running | completed
    -- Days already fetched, per GSTIN: {"<gstin>": ["2025-04-01", ...]}
    progress     jsonb NOT NULL DEFAULT '{}'::jsonb,
    findings     jsonb NOT NULL DEFAULT '[]'::jsonb,
    lease_owner  uuid,
    lease_until  timestamptz,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

ALTER TABLE jobs ADD COLUMN rejected_at_irp boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN surviving_irn text;
