//! QR PNGs rendered once per signed QR code (`qr_png`, migration 0007), so that replays and
//! lookups read the image instead of rendering it again.
use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::{Db, StoreError};

/// The row key: SHA-256 of the SignedQRCode text (the same as `sha256(convert_to(text, 'UTF8'))` in SQL).
pub fn key(signed_qr: &str) -> Vec<u8> {
    Sha256::digest(signed_qr.as_bytes()).to_vec()
}

/// Keep `png_base64` as the image of `signed_qr` (first writer wins; every writer renders the same image).
pub async fn insert<C: GenericClient>(client: &C, signed_qr: &str, png_base64: &str) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO qr_png (qr_sha256, png_base64) VALUES ($1, $2) ON CONFLICT (qr_sha256) DO NOTHING",
            &[&key(signed_qr), &png_base64],
        )
        .await?;
    Ok(())
}

impl Db {
    /// The stored image of `signed_qr`, if it was rendered before.
    pub async fn qr_png(&self, signed_qr: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        Ok(c.query_opt("SELECT png_base64 FROM qr_png WHERE qr_sha256 = $1", &[&key(signed_qr)])
            .await?
            .map(|r| r.get(0)))
    }

    /// Store the image of `signed_qr` (see [`insert`]).
    pub async fn save_qr_png(&self, signed_qr: &str, png_base64: &str) -> Result<(), StoreError> {
        insert(&self.client().await?, signed_qr, png_base64).await
    }
}
