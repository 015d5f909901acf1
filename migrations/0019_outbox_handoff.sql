-- An event the committing worker hands straight to its own relay (issue 28: no claim query per
-- event) is stored with relay_after = a short lease: other relays' polls skip it until then, so
-- it is not published twice in the normal case, and a worker that dies before publishing it
-- leaves it to any relay once the lease has passed. NULL (every other event): poll at once.
ALTER TABLE outbox ADD COLUMN relay_after timestamptz;
