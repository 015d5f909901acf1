-- E-way bills the worker made, cancelled or updated, one row per e-way bill number. The state of
-- an IRN's e-way bill lives here so that a repeated ewaybill.generate is answered without an
-- IRP call, an irn.cancel can see an active e-way bill before calling the IRP (2230), and the
-- irn.cancel saga (e-way bill first, then the IRN) resumes after its last finished step.
CREATE TABLE ewaybills (
    ewb_no             text PRIMARY KEY,
    gstin              text NOT NULL,
    irn                text,
    ewb_date           text,
    valid_till         text,
    -- active | cancelled
    status             text NOT NULL,
    cancel_date        text,
    vehicle_no         text,
    vehicle_updated_at text,
    response           jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ewaybills_irn ON ewaybills (irn, created_at DESC);
