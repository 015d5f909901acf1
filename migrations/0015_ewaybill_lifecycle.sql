-- The e-way bill lifecycle beyond generate/vehicle/cancel (issue 24): what ewaybill.extend checks
-- before any call (the distance the e-way bill was made for, its current transporter), when it
-- was last extended, and the validity for which ewaybill.expiring was published (so it is
-- published once per validity: an extension or a refresh to a later valid_till warns again).
ALTER TABLE ewaybills
    ADD COLUMN distance_km       bigint,
    ADD COLUMN transporter_id    text,
    ADD COLUMN extended_at       text,
    ADD COLUMN expiry_warned_for text;
-- The expiry scan: active e-way bills by validity (text, yyyy-MM-dd HH:mm:ss India time, which
-- sorts as time does).
CREATE INDEX ewaybills_active_valid_till ON ewaybills (valid_till) WHERE status = 'active';
