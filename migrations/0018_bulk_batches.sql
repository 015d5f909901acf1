-- Batches of every per-document command (irn.cancel_batch, ewaybill.*_batch): a member names
-- its e-way bill by number, so batch.completed's items carry it (from the item as given, then
-- from the member's answer), as they carry the IRN.
ALTER TABLE batch_members ADD COLUMN ewb_no text;
