//! Which provider serves which GSTIN, built from the configuration.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{IrpError, IrpProvider};
use crate::config::{ProviderKind, Settings};

/// One provider per configured seller GSTIN.
#[derive(Clone, Default)]
pub struct Providers {
    map: BTreeMap<String, Arc<dyn IrpProvider>>,
}

impl Providers {
    /// Build every configured GSTIN's provider; a bad entry (e.g. an unreadable NIC public
    /// key) is a configuration error at start, not a retry loop later.
    pub fn from_settings(s: &Settings) -> Result<Providers, IrpError> {
        let http =
            super::http_client_with_ca(s.http_connect_timeout(), s.http_read_timeout(), s.http_ca_file.as_deref())?;
        let mut map: BTreeMap<String, Arc<dyn IrpProvider>> = BTreeMap::new();
        for (gstin, cfg) in &s.gstins {
            let p: Arc<dyn IrpProvider> = match cfg.provider {
                ProviderKind::Whitebooks => Arc::new(super::whitebooks::Whitebooks::new(http.clone(), gstin, cfg)?),
                ProviderKind::Nic => Arc::new(super::nic::Nic::new(http.clone(), gstin, cfg)?),
            };
            map.insert(gstin.clone(), p);
        }
        Ok(Providers { map })
    }

    pub fn get(&self, gstin: &str) -> Option<Arc<dyn IrpProvider>> {
        self.map.get(&gstin.to_ascii_uppercase()).cloned()
    }

    pub fn gstins(&self) -> impl Iterator<Item = &String> {
        self.map.keys()
    }
}
