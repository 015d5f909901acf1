-- Protecting the GSTIN (issue 12): rate limits shared by every worker process, and the daily
-- count of IRP error responses that NIC blocks a GSTIN (or a client ID) for.

-- Token buckets, one row per key (`client:<irp>:<client id>`, `gstin:<irp>:<GSTIN>`). `tokens`
-- is the bucket's level at `updated_at`. It goes below zero when callers have reserved the next
-- slots (each one sleeps until its own), and `updated_at` lies in the future while a throttle
-- (HTTP 429's Retry-After, 658) holds the bucket shut. `drains` counts those throttles, so a
-- caller that reserved a slot before one can tell, and queue again.
CREATE TABLE rate_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    drains     bigint NOT NULL DEFAULT 0
);

-- Take one token from every bucket in p_keys, refilled at p_rate tokens a second up to p_burst:
-- `wait` is how long the caller must sleep before its call (0: now). When that is longer than
-- p_max_wait nothing is taken (`taken` false) and the caller gives up for now. One statement per
-- call, atomic across processes: the rows are locked in key order, so callers that share keys
-- never deadlock.
CREATE FUNCTION rate_acquire(p_keys text[], p_rate double precision, p_burst double precision,
                             p_max_wait double precision,
                             OUT wait double precision, OUT taken boolean, OUT drains bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := clock_timestamp();
    b record;
    lvl double precision;
BEGIN
    INSERT INTO rate_buckets (key, tokens, updated_at)
    SELECT k, p_burst, t FROM unnest(p_keys) AS k ORDER BY k
    ON CONFLICT (key) DO NOTHING;
    wait := 0;
    drains := 0;
    FOR b IN SELECT * FROM rate_buckets WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE LOOP
        lvl := least(p_burst, b.tokens + greatest(0, extract(epoch FROM t - b.updated_at))::float8 * p_rate);
        wait := greatest(wait,
                         greatest(0, extract(epoch FROM b.updated_at - t))::float8 + greatest(0, 1 - lvl) / p_rate);
        drains := drains + b.drains;
    END LOOP;
    taken := wait <= p_max_wait;
    IF taken THEN
        UPDATE rate_buckets
           SET tokens = least(p_burst, tokens + greatest(0, extract(epoch FROM t - updated_at))::float8 * p_rate) - 1,
               updated_at = greatest(updated_at, t)
         WHERE key = ANY (p_keys);
    END IF;
END $$;

-- IRP error responses per India day and key (`gstin:<GSTIN>`, `client:<irp>:<client id>`).
CREATE TABLE irp_error_counts (
    day   date NOT NULL,
    key   text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (day, key)
);
