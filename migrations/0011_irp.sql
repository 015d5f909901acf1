-- Several IRPs per GSTIN: which IRP a job's document was sent to (set before every generate
-- call, so an ambiguous call is looked up where it went) and, once generated, which IRP issued
-- its IRN (NULL: registered by another IRP that could not be told, 2295). Follow-up calls (get,
-- cancel, e-way bill) go to it.
ALTER TABLE jobs ADD COLUMN irp text;
