-- IRP API consumption (issue 25): calls per GSTIN, IRP, endpoint and India day, by outcome. GSPs
-- bill per call; the console's "API usage" page and `einvoice-worker usage report` read this.
--
-- Workers count in memory and add their counts here every `usage_flush_secs` (one upsert
-- statement per flush, never a round trip per command), and once more at a graceful shutdown:
-- a crash loses at most one flush interval of counts. Rows older than `usage_retention_days`
-- are deleted by the retention job.
CREATE TABLE api_calls_daily (
    -- The India (Asia/Kolkata) date of the call: the GSP's billing calendar.
    day      date   NOT NULL,
    gstin    text   NOT NULL,
    -- The IRP's configured name (NIC1, NIC2, whitebooks, …), as recorded on the IRNs it issues.
    irp      text   NOT NULL,
    -- The operation (`auth`, `generate`, `cancel`, `get_by_doc`, `ewaybill_generate`, …).
    endpoint text   NOT NULL,
    -- `ok`; `error` (the IRP answered with an error: a business refusal, 4xx); `failed` (no
    -- usable answer: transport failure, timeout, 5xx, 429).
    outcome  text   NOT NULL,
    calls    bigint NOT NULL,
    PRIMARY KEY (day, gstin, irp, endpoint, outcome)
);
