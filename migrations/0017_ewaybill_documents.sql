-- E-way bills without an IRN (issue 24, GENEWAYBILL): one row per document key (supplier GSTIN,
-- document type, number, year), so a document gets one e-way bill whatever is sent again.
-- `calls` counts GENEWAYBILL calls made for it, written before each call: an attempt that finds
-- calls > 0 and no e-way bill number knows an earlier call may have reached the portal, and looks
-- the document up (GetEwayBillGeneratedByConsigner) before it sends again.
CREATE TABLE ewaybill_documents (
    gstin      text NOT NULL,
    doc_type   text NOT NULL,
    doc_no     text NOT NULL,
    doc_year   integer NOT NULL,
    doc_date   text NOT NULL,
    ewb_no     text,
    calls      integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gstin, doc_type, doc_no, doc_year)
);
