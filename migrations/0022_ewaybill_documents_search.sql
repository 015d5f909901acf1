-- The operator console finds e-way bills made without an IRN (challans, stock transfers) by
-- their e-way bill number and by their document number, as it finds jobs (migration 0016).
CREATE INDEX IF NOT EXISTS ewaybill_documents_ewb_no ON ewaybill_documents (ewb_no) WHERE ewb_no IS NOT NULL;
CREATE INDEX IF NOT EXISTS ewaybill_documents_doc_no ON ewaybill_documents (upper(doc_no));
