//! Which IRPs serve which GSTIN, built from the configuration: the primary IRP, then the
//! `failover` entries in priority order. Choosing among them (health, ambiguity) is the
//! runtime's job (`runtime::routing`); this is the table it chooses from.
//!
//! The file's GSTINs are fixed at start; the database's (`gstins` table) change at run time:
//! `runtime::gstins` applies each change here, and a job holds the [`Served`] it looked up, so a
//! change reaches the next job and never one in flight.
//!
//! A GSTIN's section is checked when it is applied (a bad key or failover list is refused then,
//! as before), but its IRP clients are built by the first lookup that needs them (issue 27): a
//! worker with 5,000 GSTINs starts, and holds memory, as one with 5 does, and only the GSTINs
//! that send commands pay for their clients. Parsed keys are shared per process
//! (`signing::load_public_key`) and every client shares one HTTP connection pool.
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

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

/// Where a GSTIN's settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration file or the environment (fixed for the process's life).
    File,
    /// The `gstins` table (`gstin add|update|…`), followed at run time.
    Database,
}

/// One GSTIN as a job takes it: its IRPs and its section. A job keeps the `Arc` it started
/// with, so a change applied meanwhile reaches the next job, never one in flight (a change
/// makes a new `Served`, whose clients are built afresh on its first use).
pub struct Served {
    pub config: Arc<GstinConfig>,
    pub source: Source,
    gstin: String,
    http: reqwest::Client,
    /// Built once, by the first lookup; concurrent first lookups wait for that one build.
    irps: OnceLock<Result<IrpSet, String>>,
}

impl Served {
    /// Check the section (keys, failover list) without building its clients.
    fn new(http: &reqwest::Client, gstin: &str, config: GstinConfig, source: Source) -> Result<Served, IrpError> {
        check_set(gstin, &config)?;
        Ok(Served {
            config: Arc::new(config),
            source,
            gstin: gstin.to_string(),
            http: http.clone(),
            irps: OnceLock::new(),
        })
    }

    /// The GSTIN's IRPs, built on the first call. The section was checked when it was applied,
    /// so a failure here is unexpected; it is reported, and the GSTIN is not served.
    pub fn irps(&self) -> Result<&IrpSet, Unserved> {
        self.irps
            .get_or_init(|| {
                build_set(&self.http, &self.gstin, &self.config).map_err(|e| {
                    tracing::error!(gstin = %self.gstin, error = %e, "the GSTIN's IRP clients could not be built");
                    e.to_string()
                })
            })
            .as_ref()
            .map_err(|e| Unserved::Broken(e.clone()))
    }

    /// Have its clients been built (a command needed them)?
    pub fn built(&self) -> bool {
        self.irps.get().is_some()
    }
}

/// What the registry knows about a GSTIN it does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unserved {
    /// Neither the file nor the database defines it.
    Unknown,
    /// Managed in the database and disabled by an operator.
    Disabled,
    /// Managed in the database but unusable here (its credentials do not decrypt with this
    /// process's token keys, or its section does not build): the reason, with no secret.
    Broken(String),
}

/// A database-managed GSTIN as this process holds it.
struct Managed {
    version: i64,
    credentials_version: i64,
    state: Result<Arc<Served>, Unserved>,
}

/// A row of the `gstins` table, as the store read it (the registry does not import the store).
#[derive(Debug, Clone, Copy)]
pub struct ManagedRow<'a> {
    pub gstin: &'a str,
    pub version: i64,
    pub credentials_version: i64,
    pub enabled: bool,
    /// The section, or why it does not open (no secret in the text).
    pub config: Result<&'a GstinConfig, &'a str>,
}

/// What applying a database row changed in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// This version was already applied.
    Unchanged,
    /// The file defines the GSTIN: the row is ignored (the file wins).
    Shadowed,
    /// Applied; `credentials`: the password or client secret changed (drop cached sessions).
    Changed { credentials: bool },
}

/// The IRPs of every seller GSTIN: the file's (fixed) and the database's (changing at run time).
/// Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Providers {
    http: Option<reqwest::Client>,
    file: Arc<BTreeMap<String, Arc<Served>>>,
    managed: Arc<std::sync::RwLock<BTreeMap<String, Managed>>>,
}

fn build(http: &reqwest::Client, gstin: &str, cfg: &GstinConfig) -> Result<Arc<dyn IrpProvider>, IrpError> {
    Ok(match cfg.provider {
        ProviderKind::Whitebooks => Arc::new(super::whitebooks::Whitebooks::new(http.clone(), gstin, cfg)?),
        ProviderKind::Nic => Arc::new(super::nic::Nic::new(http.clone(), gstin, cfg)?),
    })
}

/// Check a GSTIN's section as [`build_set`] would, without building its clients: the failover
/// list's names, and every key it names (parsed once per process and shared).
pub fn check_set(gstin: &str, cfg: &GstinConfig) -> Result<(), IrpError> {
    let mut names: Vec<String> = Vec::with_capacity(1 + cfg.failover.len());
    for (i, e) in std::iter::once(cfg).chain(&cfg.failover).enumerate() {
        if i > 0 {
            check_failover_entry(gstin, i - 1, e)?;
        }
        if e.provider == ProviderKind::Nic {
            super::nic::public_key(gstin, e)?;
        }
        super::signing::signing_key(gstin, e)?;
        let name = e.irp_name();
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(twice(gstin, &name, i - 1));
        }
        names.push(name);
    }
    Ok(())
}

fn check_failover_entry(gstin: &str, i: usize, f: &GstinConfig) -> Result<(), IrpError> {
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
    Ok(())
}

fn twice(gstin: &str, irp: &str, i: usize) -> IrpError {
    IrpError::Config(format!("gstins.{gstin}: IRP {irp} is configured twice (failover[{i}])"))
}

/// A GSTIN's IRPs from its section: a bad entry (e.g. an unreadable NIC public key, a failover
/// entry without a name, two entries with one name) is a configuration error.
pub fn build_set(http: &reqwest::Client, gstin: &str, cfg: &GstinConfig) -> Result<IrpSet, IrpError> {
    let mut entries = vec![build(http, gstin, cfg)?];
    for (i, f) in cfg.failover.iter().enumerate() {
        check_failover_entry(gstin, i, f)?;
        let p = build(http, gstin, f)?;
        if entries.iter().any(|e| e.irp().eq_ignore_ascii_case(p.irp())) {
            return Err(twice(gstin, p.irp(), i));
        }
        entries.push(p);
    }
    Ok(IrpSet { entries })
}

/// The HTTP client every IRP of this process shares.
pub fn http_client(s: &Settings) -> Result<reqwest::Client, IrpError> {
    super::http_client_with_ca(s.http_connect_timeout(), s.http_read_timeout(), s.http_ca_file.as_deref())
}

impl Providers {
    /// Check every GSTIN of the configuration; a bad entry is a configuration error at start,
    /// not a retry loop later (its clients are built on its first command). Database GSTINs are
    /// added by [`Providers::apply`].
    pub fn from_settings(s: &Settings) -> Result<Providers, IrpError> {
        let http = http_client(s)?;
        let mut map = BTreeMap::new();
        for (gstin, cfg) in &s.gstins {
            map.insert(gstin.clone(), Arc::new(Served::new(&http, gstin, cfg.clone(), Source::File)?));
        }
        Ok(Providers { http: Some(http), file: Arc::new(map), managed: Default::default() })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Managed>> {
        self.managed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The GSTIN as a job uses it, or why it is not served, with its IRP clients built (this is
    /// where a GSTIN's first command builds them). The file wins over the database.
    pub fn lookup(&self, gstin: &str) -> Result<Arc<Served>, Unserved> {
        let served = self.entry(gstin)?;
        served.irps()?;
        Ok(served)
    }

    /// [`Self::lookup`] without building the clients (for what reads only the section).
    fn entry(&self, gstin: &str) -> Result<Arc<Served>, Unserved> {
        let g = gstin.to_ascii_uppercase();
        if let Some(s) = self.file.get(&g) {
            return Ok(s.clone());
        }
        self.read().get(&g).map_or(Err(Unserved::Unknown), |m| m.state.clone())
    }

    /// The section of a served GSTIN, without building its clients: for what visits every
    /// GSTIN (the error-budget sampler) and must not build them all.
    pub fn section(&self, gstin: &str) -> Option<Arc<GstinConfig>> {
        self.entry(gstin).ok().map(|s| s.config.clone())
    }

    /// How many GSTINs are served, and how many of them have had their IRP clients built.
    pub fn counts(&self) -> (usize, usize) {
        let managed = self.read();
        let served = self.file.values().chain(
            managed.iter().filter(|(g, _)| !self.file.contains_key(*g)).filter_map(|(_, m)| m.state.as_ref().ok()),
        );
        served.fold((0, 0), |(n, b), s| (n + 1, b + usize::from(s.built())))
    }

    /// The GSTIN's primary IRP.
    pub fn get(&self, gstin: &str) -> Option<Arc<dyn IrpProvider>> {
        self.set(gstin).map(|s| s.primary().clone())
    }

    /// All of the GSTIN's IRPs (a copy: the caller keeps them however the registry changes).
    pub fn set(&self, gstin: &str) -> Option<IrpSet> {
        self.lookup(gstin).ok().and_then(|s| s.irps().ok().cloned())
    }

    /// The GSTIN's section (UPI id, payee name, …).
    pub fn config(&self, gstin: &str) -> Option<Arc<GstinConfig>> {
        self.lookup(gstin).ok().map(|s| s.config.clone())
    }

    /// Every GSTIN served now, sorted.
    pub fn gstins(&self) -> Vec<String> {
        let managed = self.read();
        let mut all: Vec<String> = self
            .file
            .keys()
            .cloned()
            .chain(
                managed.iter().filter(|(g, m)| m.state.is_ok() && !self.file.contains_key(*g)).map(|(g, _)| g.clone()),
            )
            .collect();
        all.sort();
        all
    }

    /// Is the GSTIN defined by the configuration file or environment?
    pub fn in_file(&self, gstin: &str) -> bool {
        self.file.contains_key(&gstin.to_ascii_uppercase())
    }

    /// The reporting window of every database GSTIN that sets one (the file's are in the settings).
    pub fn reporting_windows(&self) -> Vec<(String, u32)> {
        self.read()
            .iter()
            .filter_map(|(g, m)| {
                m.state.as_ref().ok().and_then(|s| s.config.reporting_window_days).map(|d| (g.clone(), d))
            })
            .collect()
    }

    /// The `ewaybill.expiring` lead of every database GSTIN that sets one.
    pub fn expiry_leads(&self) -> Vec<(String, u64)> {
        self.read()
            .iter()
            .filter_map(|(g, m)| {
                m.state.as_ref().ok().and_then(|s| s.config.ewb_expiry_warn_secs).map(|d| (g.clone(), d))
            })
            .collect()
    }

    /// The database version this process applied per GSTIN (the periodic check compares them).
    pub fn versions(&self) -> std::collections::HashMap<String, i64> {
        self.read().iter().map(|(g, m)| (g.clone(), m.version)).collect()
    }

    /// Apply a row of the `gstins` table (its section, or why it does not open). A row for a
    /// GSTIN of the file is ignored.
    pub fn apply(&self, row: ManagedRow<'_>) -> Applied {
        let gstin = row.gstin.to_ascii_uppercase();
        let previous = self.read().get(&gstin).map(|m| (m.version, m.credentials_version));
        if previous.is_some_and(|(v, _)| v >= row.version) {
            return Applied::Unchanged;
        }
        if self.file.contains_key(&gstin) {
            // Remembered (never served: `lookup` reads the file first) so it is reported once a version.
            let state = Err(Unserved::Broken("defined in the configuration file".into()));
            let m = Managed { version: row.version, credentials_version: row.credentials_version, state };
            self.managed.write().unwrap_or_else(|p| p.into_inner()).insert(gstin, m);
            return Applied::Shadowed;
        }
        let state = match (&row.config, row.enabled) {
            (_, false) => Err(Unserved::Disabled),
            (Err(e), true) => Err(Unserved::Broken(e.to_string())),
            (Ok(cfg), true) => match cfg.check(&gstin).map_err(|e| e.to_string()).and_then(|()| {
                let http = self.http.as_ref().ok_or_else(|| "no HTTP client".to_string())?;
                Served::new(http, &gstin, (*cfg).clone(), Source::Database).map_err(|e| e.to_string())
            }) {
                Ok(served) => Ok(Arc::new(served)),
                Err(e) => Err(Unserved::Broken(e)),
            },
        };
        if let Err(Unserved::Broken(why)) = &state {
            tracing::error!(gstin, version = row.version, error = %why, "a GSTIN in the database cannot be served");
        }
        let credentials = previous.is_some_and(|(_, c)| c != row.credentials_version);
        let mut managed = self.managed.write().unwrap_or_else(|p| p.into_inner());
        // Another task may have applied a newer version meanwhile.
        if managed.get(&gstin).is_some_and(|m| m.version >= row.version) {
            return Applied::Unchanged;
        }
        managed.insert(gstin, Managed { version: row.version, credentials_version: row.credentials_version, state });
        Applied::Changed { credentials }
    }

    /// The row is gone (deleted by hand): stop serving the GSTIN.
    pub fn remove(&self, gstin: &str) -> bool {
        self.managed.write().unwrap_or_else(|p| p.into_inner()).remove(&gstin.to_ascii_uppercase()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_GSTIN: &str = "29AAGCP4821K1Z3";
    const DB_GSTIN: &str = "27AAKFU7303M1ZP";

    fn section(password: &str, upi: &str) -> GstinConfig {
        let toml = format!(
            "[gstins.\"{DB_GSTIN}\"]\nprovider = \"whitebooks\"\nbase_url = \"http://127.0.0.1:1\"\nusername = \"u\"\n\
             password = \"{password}\"\nclient_id = \"c\"\nclient_secret = \"s\"\nupi_id = \"{upi}\"\n"
        );
        Settings::from_toml(&toml).unwrap().gstins.remove(DB_GSTIN).unwrap()
    }

    fn row<'a>(cfg: &'a GstinConfig, gstin: &'a str, version: i64, creds: i64, enabled: bool) -> ManagedRow<'a> {
        ManagedRow { gstin, version, credentials_version: creds, enabled, config: Ok(cfg) }
    }

    #[test]
    fn database_rows_apply_in_version_order_and_a_job_keeps_what_it_looked_up() {
        let file = format!(
            "[gstins.\"{FILE_GSTIN}\"]\nprovider = \"whitebooks\"\nbase_url = \"http://127.0.0.1:1\"\nusername = \"u\"\n\
             password = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        );
        let p = Providers::from_settings(&Settings::from_toml(&file).unwrap()).unwrap();
        assert_eq!(p.lookup(DB_GSTIN).err(), Some(Unserved::Unknown));
        let v1 = section("one", "branch.a@okaxis");
        assert_eq!(p.apply(row(&v1, DB_GSTIN, 1, 1, true)), Applied::Changed { credentials: false });
        let in_flight = p.lookup(DB_GSTIN).unwrap();
        assert_eq!(p.gstins(), vec![DB_GSTIN.to_string(), FILE_GSTIN.to_string()]);
        // A new UPI id and password: the next lookup sees them, the one in flight does not.
        let v2 = section("two", "branch.b@okaxis");
        assert_eq!(p.apply(row(&v2, DB_GSTIN, 2, 2, true)), Applied::Changed { credentials: true });
        assert_eq!(in_flight.config.upi_id.as_deref(), Some("branch.a@okaxis"));
        assert_eq!(p.config(DB_GSTIN).unwrap().upi_id.as_deref(), Some("branch.b@okaxis"));
        // An older version (a late notification) changes nothing.
        assert_eq!(p.apply(row(&v1, DB_GSTIN, 1, 1, true)), Applied::Unchanged);
        assert_eq!(p.config(DB_GSTIN).unwrap().upi_id.as_deref(), Some("branch.b@okaxis"));
        // Disabled: not served, and said so.
        assert_eq!(p.apply(row(&v2, DB_GSTIN, 3, 2, false)), Applied::Changed { credentials: false });
        assert_eq!(p.lookup(DB_GSTIN).err(), Some(Unserved::Disabled));
        assert_eq!(p.gstins(), vec![FILE_GSTIN.to_string()]);
        // The file wins: a row for one of its GSTINs is reported once, never served.
        assert_eq!(p.apply(row(&v1, FILE_GSTIN, 1, 1, true)), Applied::Shadowed);
        assert_eq!(p.apply(row(&v1, FILE_GSTIN, 1, 1, true)), Applied::Unchanged);
        assert_eq!(p.lookup(FILE_GSTIN).unwrap().source, Source::File);
        // A row that does not open: a reason, no service.
        let broken =
            ManagedRow { gstin: DB_GSTIN, version: 4, credentials_version: 2, enabled: true, config: Err("no key") };
        p.apply(broken);
        assert_eq!(p.lookup(DB_GSTIN).err(), Some(Unserved::Broken("no key".into())));
        assert!(p.remove(DB_GSTIN));
        assert_eq!(p.lookup(DB_GSTIN).err(), Some(Unserved::Unknown));
    }

    /// Issue 27: a GSTIN's clients are built by its first lookup, once however many lookups race
    /// for it, never by reading its section; a change makes the next lookup build afresh while a
    /// job keeps the clients it had.
    #[test]
    fn clients_are_built_on_the_first_lookup_once_and_afresh_after_a_change() {
        let file = format!(
            "[gstins.\"{FILE_GSTIN}\"]\nprovider = \"whitebooks\"\nbase_url = \"http://127.0.0.1:1\"\nusername = \"u\"\n\
             password = \"p\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"
        );
        let p = Providers::from_settings(&Settings::from_toml(&file).unwrap()).unwrap();
        let v1 = section("one", "branch.a@okaxis");
        p.apply(row(&v1, DB_GSTIN, 1, 1, true));
        assert_eq!(p.counts(), (2, 0));
        assert_eq!(p.section(DB_GSTIN).unwrap().upi_id.as_deref(), Some("branch.a@okaxis"));
        assert_eq!(p.gstins().len(), 2);
        assert_eq!(p.counts(), (2, 0), "reading sections builds nothing");
        let firsts: Vec<Arc<dyn IrpProvider>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| p.get(DB_GSTIN).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(firsts.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])), "built more than once");
        assert_eq!(p.counts(), (2, 1));
        let in_flight = p.set(DB_GSTIN).unwrap();
        let v2 = section("two", "branch.b@okaxis");
        p.apply(row(&v2, DB_GSTIN, 2, 2, true));
        assert_eq!(p.counts(), (2, 0), "the new section's clients wait for their first command");
        let next = p.get(DB_GSTIN).unwrap();
        assert!(!Arc::ptr_eq(in_flight.primary(), &next));
        assert!(Arc::ptr_eq(in_flight.primary(), &firsts[0]), "the job keeps what it looked up");
        // A section that does not check is refused when applied, not at its first command.
        let mut nic = section("three", "branch.c@okaxis");
        nic.provider = ProviderKind::Nic;
        let applied = p.apply(row(&nic, DB_GSTIN, 3, 2, true));
        assert_eq!(applied, Applied::Changed { credentials: false });
        assert!(matches!(p.lookup(DB_GSTIN).err(), Some(Unserved::Broken(why)) if why.contains("public key")));
    }

    #[test]
    fn the_public_json_has_no_secret_and_the_sealed_form_round_trips() {
        let cfg = section("hunter2", "branch.a@okaxis");
        let public = cfg.public_json().to_string();
        assert!(
            !public.contains("hunter2") && !public.contains("\"s\"") && public.contains("branch.a@okaxis"),
            "{public}"
        );
        let back: GstinConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(back.password.expose_secret(), "hunter2");
        assert_eq!(back.client_secret.expose_secret(), "s");
    }
}
