//! Seller GSTINs managed at run time (migration 0013): one row per GSTIN, its section sealed
//! under the token key, every change announced on [`CHANNEL`] so each worker re-reads that row.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::secrets::SecretBox;
use super::{Db, StoreError};
use crate::config::GstinConfig;

/// The LISTEN/NOTIFY channel `gstins`' trigger announces changes on.
pub const CHANNEL: &str = "einvoice_gstins";

/// A notification: which GSTIN changed and its new version (0: the row was deleted).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GstinChange {
    pub gstin: String,
    pub version: i64,
}

impl GstinChange {
    pub fn from_payload(payload: &str) -> Option<GstinChange> {
        serde_json::from_str(payload).ok()
    }
}

/// A row as `gstin list` shows it: no secret (nothing here is decrypted).
#[derive(Debug, Clone, Serialize)]
pub struct GstinRow {
    pub gstin: String,
    pub settings: serde_json::Value,
    pub enabled: bool,
    pub version: i64,
    pub credentials_version: i64,
    pub updated_at: DateTime<Utc>,
}

/// A row as a worker uses it.
#[derive(Debug, Clone)]
pub struct LoadedGstin {
    pub gstin: String,
    /// `Err`: the sealed section does not open with any configured token key (say so, serve
    /// nothing for it) or does not parse.
    pub config: Result<GstinConfig, String>,
    pub enabled: bool,
    pub version: i64,
    pub credentials_version: i64,
}

/// What an operator's change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// The row's new version.
    Done(i64),
    NotFound,
}

fn seal(sbox: &SecretBox, cfg: &GstinConfig) -> Vec<u8> {
    let text = serde_json::to_vec(cfg).expect("a GSTIN section serialises");
    sbox.seal(&text)
}

fn open(sbox: &SecretBox, sealed: &[u8]) -> Result<(GstinConfig, bool), String> {
    let (plain, current) = sbox.open_current(sealed).map_err(|_| {
        "its stored credentials do not decrypt with any EINVOICE_TOKEN_KEY (was the key replaced \
         rather than rotated? keep the old key in the list until every row is re-sealed)"
            .to_string()
    })?;
    let cfg = serde_json::from_slice(&plain).map_err(|e| format!("its stored section does not parse: {e}"))?;
    Ok((cfg, current))
}

const COLUMNS: &str = "gstin, sealed, enabled, version, credentials_version";

impl Db {
    /// Add a GSTIN; `false` when it is already there (nothing written).
    pub async fn gstin_add(&self, gstin: &str, cfg: &GstinConfig, sbox: &SecretBox) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO gstins (gstin, settings, sealed) VALUES ($1, $2, $3) ON CONFLICT (gstin) DO NOTHING",
                &[&gstin, &cfg.public_json(), &seal(sbox, cfg)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Change a GSTIN's section with `change` (read, changed and written in one transaction, so
    /// two operators' changes do not undo each other). `credentials`: the change replaced a
    /// password or client secret, so the GSTIN's stored sessions are deleted with it and every
    /// worker drops its cached ones: the next token is asked for with the new credentials.
    pub async fn gstin_modify(
        &self,
        gstin: &str,
        sbox: &SecretBox,
        credentials: bool,
        change: impl FnOnce(&mut GstinConfig) -> Result<(), String>,
    ) -> Result<Result<Changed, String>, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx.query_opt("SELECT sealed FROM gstins WHERE gstin = $1 FOR UPDATE", &[&gstin]).await? else {
            return Ok(Ok(Changed::NotFound));
        };
        let mut cfg = match open(sbox, &row.get::<_, Vec<u8>>(0)) {
            Ok((cfg, _)) => cfg,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = change(&mut cfg) {
            return Ok(Err(e));
        }
        let row = tx
            .query_one(
                "UPDATE gstins SET settings = $2, sealed = $3, version = version + 1,
                     credentials_version = credentials_version + $4::int, updated_at = now()
                 WHERE gstin = $1 RETURNING version",
                &[&gstin, &cfg.public_json(), &seal(sbox, &cfg), &i32::from(credentials)],
            )
            .await?;
        if credentials {
            tx.execute("DELETE FROM auth_tokens WHERE gstin = $1", &[&gstin]).await?;
        }
        tx.commit().await?;
        Ok(Ok(Changed::Done(row.get(0))))
    }

    /// Enable or disable a GSTIN (a no-op change still bumps the version: harmless).
    pub async fn gstin_set_enabled(&self, gstin: &str, enabled: bool) -> Result<Changed, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "UPDATE gstins SET enabled = $2, version = version + 1, updated_at = now() WHERE gstin = $1
                 RETURNING version",
                &[&gstin, &enabled],
            )
            .await?;
        Ok(row.map_or(Changed::NotFound, |r| Changed::Done(r.get(0))))
    }

    /// Every managed GSTIN, without secrets.
    pub async fn gstins_list(&self) -> Result<Vec<GstinRow>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT gstin, settings, enabled, version, credentials_version, updated_at FROM gstins ORDER BY gstin",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| GstinRow {
                gstin: r.get(0),
                settings: r.get(1),
                enabled: r.get(2),
                version: r.get(3),
                credentials_version: r.get(4),
                updated_at: r.get(5),
            })
            .collect())
    }

    /// (GSTIN, version) of every row: the periodic check's cheap comparison.
    pub async fn gstin_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.client().await?;
        let rows = c.query("SELECT gstin, version FROM gstins", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The rows named (all when `only` is `None`), opened with `sbox`. A row still sealed under
    /// an older key of the list is sealed again under the first (token key rotation), without a
    /// new version: nothing changed for the workers.
    pub async fn gstins_load(&self, only: Option<&[String]>, sbox: &SecretBox) -> Result<Vec<LoadedGstin>, StoreError> {
        let c = self.client().await?;
        let rows = match only {
            None => c.query(&format!("SELECT {COLUMNS} FROM gstins"), &[]).await?,
            Some(list) => c.query(&format!("SELECT {COLUMNS} FROM gstins WHERE gstin = ANY($1)"), &[&list]).await?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let gstin: String = r.get(0);
            let sealed: Vec<u8> = r.get(1);
            let config = match open(sbox, &sealed) {
                Ok((cfg, current)) => {
                    if !current {
                        let resealed = seal(sbox, &cfg);
                        c.execute(
                            "UPDATE gstins SET sealed = $3 WHERE gstin = $1 AND sealed = $2",
                            &[&gstin, &sealed, &resealed],
                        )
                        .await?;
                        tracing::info!(gstin, "re-sealed the GSTIN's credentials under the current token key");
                    }
                    Ok(cfg)
                }
                Err(e) => Err(e),
            };
            out.push(LoadedGstin {
                gstin,
                config,
                enabled: r.get(2),
                version: r.get(3),
                credentials_version: r.get(4),
            });
        }
        Ok(out)
    }
}
