//! Which IRPs serve which GSTIN, built from the configuration: the primary IRP, then the
//! `failover` entries in priority order. Choosing among them (health, ambiguity) is the
//! runtime's job (`runtime::routing`); this is the table it chooses from.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{IrpError, IrpProvider};
use crate::config::{GstinConfig, ProviderKind, Settings};
use crate::domain::portal::{EwbAccess, NicPortal};

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

    /// Where a call about an existing e-way bill goes. `via`: the IRP it was made through, when
    /// known; `portal`: the NIC portal its number names; `access`: whether this call may cross
    /// between NIC's portals with the `irp` header.
    ///
    /// An e-way bill made through a private IRP or a GSP not named NIC1/NIC2 stays there (as
    /// [`Self::for_issuer`]); so does every e-way bill of a GSTIN with no IRP named NIC1 or NIC2
    /// (nothing to choose between). Otherwise its portal decides: the IRP named for it, else, for
    /// get and Part B, the other NIC IRP with the `irp` header; else a refusal that says which
    /// IRP to configure, before any call (the portal would answer 444–449).
    pub fn for_ewaybill(
        &self,
        via: Option<&str>,
        portal: Option<NicPortal>,
        access: EwbAccess,
    ) -> Result<Arc<dyn IrpProvider>, EwbRouteError> {
        let nic_named = |n: &str| NicPortal::from_irp(n).is_some();
        let private = via.filter(|v| !nic_named(v));
        let has_nic = self.entries.iter().any(|p| nic_named(p.irp()));
        let (Some(portal), None, true) = (portal, private, has_nic) else {
            return self.for_issuer(via).ok_or_else(|| EwbRouteError::IrpNotConfigured(via.unwrap_or("").to_string()));
        };
        if let Some(p) = self.by_name(portal.irp()) {
            return Ok(p.clone());
        }
        if access == EwbAccess::CrossPortal {
            if let Some(p) = self.entries.iter().find_map(|p| p.cross_portal(portal.irp())) {
                return Ok(p);
            }
        }
        Err(EwbRouteError::PortalNotConfigured { portal, access })
    }
}

impl EwbRouteError {
    /// The error item's code.
    pub fn code(&self) -> &'static str {
        match self {
            EwbRouteError::IrpNotConfigured(_) => "IRP_NOT_CONFIGURED",
            EwbRouteError::PortalNotConfigured { .. } => "EWB_PORTAL_NOT_CONFIGURED",
        }
    }
}

/// Why no configured IRP can take a call about an e-way bill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EwbRouteError {
    #[error("the e-way bill was made through IRP {0}, which is not configured for this GSTIN; add it under failover")]
    IrpNotConfigured(String),
    #[error(
        "the e-way bill was made on {} ({}), and {} there: add {} under the GSTIN's failover",
        portal.ewb_portal(),
        portal.irp(),
        match access {
            EwbAccess::OwnerOnly => "NIC's portals take this call only at the portal that made the e-way bill (444–449 elsewhere)",
            EwbAccess::CrossPortal => "no NIC IRP is configured to reach it",
        },
        portal.irp()
    )]
    PortalNotConfigured { portal: NicPortal, access: EwbAccess },
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
