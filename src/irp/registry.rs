//! Which IRPs serve which GSTIN, built from the configuration: the primary IRP, then the
//! `failover` entries in priority order. Choosing among them (health, ambiguity) is the
//! runtime's job (`runtime::routing`); this is the table it chooses from.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{IrpError, IrpProvider};
use crate::config::{GstinConfig, ProviderKind, Settings};

/// A GSTIN's IRPs, primary first. Never empty.
#[derive(Clone)]
pub struct IrpSet {
    entries: Vec<Arc<dyn IrpProvider>>,
}

impl IrpSet {
    pub fn primary(&self) -> &Arc<dyn IrpProvider> {
        &self.entries[0]
    }

    /// Every IRP of the GSTIN, in priority order.
    pub fn entries(&self) -> &[Arc<dyn IrpProvider>] {
        &self.entries
    }

    /// The entry named `irp` (case-insensitive).
    pub fn by_name(&self, irp: &str) -> Option<&Arc<dyn IrpProvider>> {
        self.entries.iter().find(|p| p.irp().eq_ignore_ascii_case(irp))
    }

    /// Where to send a follow-up call (get, cancel, e-way bill) for an IRN `issuer` made: that
    /// IRP itself; else, between NIC-1 and NIC-2, the other one with the `irp` header; else
    /// `None` (a private IRP's documents are only at that IRP). No issuer recorded (an IRN from
    /// before IRPs were recorded, or one registered elsewhere): the primary.
    pub fn for_issuer(&self, issuer: Option<&str>) -> Option<Arc<dyn IrpProvider>> {
        let Some(issuer) = issuer else { return Some(self.primary().clone()) };
        if let Some(p) = self.by_name(issuer) {
            return Some(p.clone());
        }
        self.entries.iter().find_map(|p| p.cross_portal(&issuer.to_ascii_uppercase()))
    }
}

/// The IRPs of every configured seller GSTIN.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<String, IrpSet>,
}

fn build(http: &reqwest::Client, gstin: &str, cfg: &GstinConfig) -> Result<Arc<dyn IrpProvider>, IrpError> {
    Ok(match cfg.provider {
        ProviderKind::Whitebooks => Arc::new(super::whitebooks::Whitebooks::new(http.clone(), gstin, cfg)?),
        ProviderKind::Nic => Arc::new(super::nic::Nic::new(http.clone(), gstin, cfg)?),
    })
}

impl Providers {
    /// Build every configured GSTIN's IRPs; a bad entry (e.g. an unreadable NIC public key, a
    /// failover entry without a name, two entries with one name) is a configuration error at
    /// start, not a retry loop later.
    pub fn from_settings(s: &Settings) -> Result<Providers, IrpError> {
        let http =
            super::http_client_with_ca(s.http_connect_timeout(), s.http_read_timeout(), s.http_ca_file.as_deref())?;
        let mut map = BTreeMap::new();
        for (gstin, cfg) in &s.gstins {
            let mut entries = vec![build(&http, gstin, cfg)?];
            for (i, f) in cfg.failover.iter().enumerate() {
                if f.irp.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return Err(IrpError::Config(format!(
                        "gstins.{gstin}.failover[{i}] needs `irp`, the IRP's name (e.g. \"IRIS\", \"NIC2\")"
                    )));
                }
                if !f.failover.is_empty() {
                    return Err(IrpError::Config(format!(
                        "gstins.{gstin}.failover[{i}] has its own `failover` list; list every IRP under the GSTIN"
                    )));
                }
                let p = build(&http, gstin, f)?;
                if entries.iter().any(|e| e.irp().eq_ignore_ascii_case(p.irp())) {
                    return Err(IrpError::Config(format!(
                        "gstins.{gstin}: IRP {} is configured twice (failover[{i}])",
                        p.irp()
                    )));
                }
                entries.push(p);
            }
            map.insert(gstin.clone(), IrpSet { entries });
        }
        Ok(Providers { map })
    }

    /// The GSTIN's primary IRP.
    pub fn get(&self, gstin: &str) -> Option<Arc<dyn IrpProvider>> {
        self.set(gstin).map(|s| s.primary().clone())
    }

    /// All of the GSTIN's IRPs.
    pub fn set(&self, gstin: &str) -> Option<&IrpSet> {
        self.map.get(&gstin.to_ascii_uppercase())
    }

    pub fn gstins(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }
}
