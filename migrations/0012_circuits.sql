-- Circuit breakers shared by every worker process (issue 23): when one process's calls find an
-- IRP down for a GSTIN, the others stop calling it too. One row per (GSTIN, IRP) that has failed
-- since its last success; no row is a closed circuit. Every change is announced on the
-- `einvoice_circuits` channel (LISTEN/NOTIFY), so processes keep a local copy and a call on a
-- closed circuit never reads this table.
CREATE TABLE irp_circuits (
    gstin       text NOT NULL,
    irp         text NOT NULL,
    -- Consecutive outage failures (transport errors, 5xx) across all processes.
    failures    integer NOT NULL,
    -- No calls before this (NULL: still closed, failures below the threshold).
    open_until  timestamptz,
    -- When it last went from closed to open (what an operator, or a test, compares calls with).
    opened_at   timestamptz,
    -- Half-open: the one call that probes the IRP, and until when the others wait for it.
    probe_owner uuid,
    probe_until timestamptz,
    PRIMARY KEY (gstin, irp)
);

CREATE FUNCTION irp_circuits_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('einvoice_circuits',
                          json_build_object('gstin', OLD.gstin, 'irp', OLD.irp, 'failures', 0)::text);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('einvoice_circuits',
                      json_build_object('gstin', NEW.gstin, 'irp', NEW.irp, 'failures', NEW.failures,
                                        'open_until', NEW.open_until, 'probe_until', NEW.probe_until)::text);
    RETURN NEW;
END $$;

CREATE TRIGGER irp_circuits_notify AFTER INSERT OR UPDATE OR DELETE ON irp_circuits
    FOR EACH ROW EXECUTE FUNCTION irp_circuits_notify();

-- One outage failure: count it and, at p_threshold, open the circuit for p_open_secs (a failure
-- while open or half-open re-opens it from now, and ends any probe).
CREATE FUNCTION circuit_failure(p_gstin text, p_irp text, p_threshold integer, p_open_secs double precision,
                                OUT n_failures integer, OUT n_open_until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    INSERT INTO irp_circuits AS c (gstin, irp, failures, open_until, opened_at)
    VALUES (p_gstin, p_irp, 1,
            CASE WHEN p_threshold <= 1 THEN t + make_interval(secs => p_open_secs) END,
            CASE WHEN p_threshold <= 1 THEN t END)
    ON CONFLICT (gstin, irp) DO UPDATE
       SET failures = c.failures + 1,
           open_until = CASE WHEN c.failures + 1 >= p_threshold
                             THEN greatest(c.open_until, t + make_interval(secs => p_open_secs)) END,
           opened_at = CASE WHEN c.failures + 1 >= p_threshold AND c.open_until IS NULL THEN t
                            ELSE c.opened_at END,
           probe_owner = NULL,
           probe_until = NULL
    RETURNING c.failures, c.open_until INTO n_failures, n_open_until;
END $$;

-- Half-open (the open period has passed): may p_owner's call probe the IRP? Only one at a time:
-- `admitted`, or `wait_until` (the circuit re-opened, or another call holds the probe until then).
-- A circuit with no row is closed: admitted.
CREATE FUNCTION circuit_probe(p_gstin text, p_irp text, p_owner uuid, p_lease_secs double precision,
                              OUT admitted boolean, OUT wait_until timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := clock_timestamp();
    c record;
BEGIN
    SELECT * INTO c FROM irp_circuits WHERE gstin = p_gstin AND irp = p_irp FOR UPDATE;
    IF NOT FOUND OR c.open_until IS NULL THEN
        admitted := true;
    ELSIF c.open_until > t THEN
        admitted := false;
        wait_until := c.open_until;
    ELSIF c.probe_until IS NOT NULL AND c.probe_until > t AND c.probe_owner IS DISTINCT FROM p_owner THEN
        admitted := false;
        wait_until := c.probe_until;
    ELSE
        UPDATE irp_circuits SET probe_owner = p_owner, probe_until = t + make_interval(secs => p_lease_secs)
         WHERE gstin = p_gstin AND irp = p_irp;
        admitted := true;
    END IF;
END $$;
