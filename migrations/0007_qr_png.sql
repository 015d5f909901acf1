-- QR PNGs, rendered once per signed QR code (when EINVOICE_QR_PNG is on): a replay or an
-- irn.details reads the stored image instead of rendering it again. Keyed by the SHA-256 of the
-- SignedQRCode text (sha256(convert_to(signed_qr_code, 'UTF8')) on the server side), so an image
-- always belongs to exactly that signed QR: a new signature for the same IRN gets its own row.
CREATE TABLE qr_png (
    qr_sha256 bytea PRIMARY KEY,
    png_base64 text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
