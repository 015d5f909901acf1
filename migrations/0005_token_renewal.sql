-- Set when a renewal returned the same token (the IRP issues a new one only in its last minutes):
-- nobody asks the IRP again for this key before this time, so one token costs one auth call,
-- not a storm of them as its expiry approaches.
ALTER TABLE auth_tokens ADD COLUMN renew_after timestamptz;
