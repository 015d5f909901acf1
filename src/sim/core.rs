//! The simulator's protocol-neutral state: documents, tokens, faults and counters.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::portal::{EwbNo, NicPortal};
use crate::irp::types::format_ist;
use crate::irp::{jwt, nic_crypto};

mod ewaybill;
pub use ewaybill::SimEwb;

/// A simulated IRP error: codes and messages as NIC sends them, plus `InfoDtls`.
#[derive(Debug, Clone)]
pub struct SimError {
    pub errors: Vec<(String, String)>,
    pub info: Vec<Value>,
}

impl SimError {
    pub fn one(code: &str, message: impl Into<String>) -> SimError {
        SimError { errors: vec![(code.to_string(), message.into())], info: Vec::new() }
    }
}

/// What the next requests should suffer. Counts are "the next N calls".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every API call.
    pub latency_ms: u64,
    /// The next N API calls (not auth) answer HTTP 503.
    pub fail_next_5xx: u32,
    /// Every API call answers 503 with this probability (0.0–1.0).
    pub fail_5xx_ratio: f64,
    /// The next N generate calls (IRNs, and e-way bills without an IRN) commit, then hang this
    /// long before answering.
    pub timeout_commit_next: u32,
    pub timeout_hang_ms: u64,
    /// The next N API calls (not auth) answer 1005 Invalid Token.
    pub force_1005_next: u32,
    /// Token lifetime in seconds (NIC: 3600 on sandbox, 21600 on production).
    pub token_ttl_secs: u64,
    /// HSN codes the IRP's master does not know (answer 2176).
    pub invalid_hsn: Vec<String>,
    /// GSTINs the IRP thinks are inactive (answer 3029); `sync` clears the ones also in `sync_activates`.
    pub inactive_gstins: Vec<String>,
    pub sync_activates: Vec<String>,
    /// (gstin → password): when set for a GSTIN, any other password fails auth with 1008.
    pub passwords: HashMap<String, String>,
    /// Shares (0.0–1.0) drawn from the simulator's seeded RNG (`SimCore::seed`), for soak and
    /// fault tests: generate calls that commit then hang `timeout_hang_ms`, and API calls
    /// answering 1005 although the token is valid (`fail_5xx_ratio` is the 503 share).
    pub p_commit_then_timeout: f64,
    pub p_force_1005: f64,
    /// An IRP outage: every API call (not auth) answers 503 while set.
    pub outage: bool,
    /// Auth returns the live token even in its last 10 minutes, forced or not (an IRP or GSP
    /// that never renews early): a client must not turn that into a storm of auth calls.
    pub early_renewal_refused: bool,
    /// A GSP plan's quota: at most this many API calls (not auth) per client ID in any 60 s;
    /// more answer HTTP 429 with `Retry-After` = the seconds until the oldest call leaves the
    /// window. Refused calls do not count.
    pub rate_limit_per_minute: Option<u32>,
    /// The next N API calls (not auth) answer HTTP 429 with `Retry-After: throttle_retry_after_secs`.
    pub throttle_next: u32,
    pub throttle_retry_after_secs: u64,
    /// `bench`'s stand-in IRP: generate answers JWTs with a zero signature instead of signing
    /// twice (RS256), so a benchmark measures the worker, not the simulator's signing. Only for a
    /// client without a configured signing key (the Whitebooks face); NIC clients verify.
    pub unsigned: bool,
    /// E-way bills made from now on are valid this many hours instead of a day per 200 km (as
    /// one made long ago would be near its end): at most 8 puts them inside the extension window.
    pub ewb_valid_hours: Option<u64>,
}

/// One request the simulator received: when, what, and the HTTP status it answered (tests
/// compare these times with the worker's, e.g. "no generate after the circuit opened").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimCall {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl SimCall {
    /// A generate (NIC `POST /eicore/v1.03/Invoice`, Whitebooks `…/type/GENERATE/…`).
    pub fn is_generate(&self) -> bool {
        (self.method == "POST" && self.path.ends_with("/eicore/v1.03/Invoice")) || self.path.contains("/type/GENERATE/")
    }
}

/// How many requests the call log keeps (soak runs make millions).
pub const MAX_CALL_LOG: usize = 100_000;

/// Counters a test asserts on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimStats {
    pub auth_calls: u64,
    pub generate_calls: u64,
    pub irns_created: u64,
    pub lookups: u64,
    pub cancel_calls: u64,
    pub other_calls: u64,
    pub injected_5xx: u64,
    pub injected_1005: u64,
    /// Generate calls that committed and then answered too late (the ambiguous case).
    pub injected_commit_timeouts: u64,
    /// Generate calls per IRN (whether or not they created it).
    pub generate_per_irn: HashMap<String, u64>,
    /// E-way bill calls: generate by IRN, cancel (`CANEWB`), vehicle update (`VEHEWB`).
    #[serde(default)]
    pub ewb_generate_calls: u64,
    #[serde(default)]
    pub ewb_cancel_calls: u64,
    #[serde(default)]
    pub ewb_vehicle_calls: u64,
    /// `EXTENDVALIDITY` and `UPDATETRANSPORTER` calls.
    #[serde(default)]
    pub ewb_extend_calls: u64,
    #[serde(default)]
    pub ewb_transporter_calls: u64,
    /// `GENEWAYBILL` calls (e-way bills without an IRN), and `GetEwayBillGeneratedByConsigner` lookups.
    #[serde(default)]
    pub ewb_doc_generate_calls: u64,
    #[serde(default)]
    pub ewb_doc_lookups: u64,
    /// API calls answered HTTP 429 (quota or `throttle_next`).
    #[serde(default)]
    pub throttled_429: u64,
    /// Calls this portal took for the other NIC portal's data (the `irp` header), and calls about
    /// the other portal's e-way bills it refused (444–449).
    #[serde(default)]
    pub cross_portal_calls: u64,
    #[serde(default)]
    pub portal_refusals: u64,
}

#[derive(Debug, Clone)]
pub struct SimDoc {
    pub irn: String,
    pub gstin: String,
    pub doc_type: String,
    pub doc_number: String,
    pub doc_date: String,
    pub ack_no: String,
    pub ack_at: DateTime<Utc>,
    pub status: String,
    pub cancel_date: Option<String>,
    pub signed_invoice: String,
    pub signed_qr: String,
    pub ewb: Option<(String, String, String)>,
    pub rejected_on: Option<NaiveDate>,
    pub surviving_irn: Option<String>,
}

/// A token issued to (gstin, user).
#[derive(Debug, Clone)]
pub struct SimToken {
    pub token: String,
    pub gstin: String,
    pub user: String,
    pub expires_at: DateTime<Utc>,
    pub sek: [u8; 32],
}

#[derive(Deserialize)]
pub struct RejectRequest {
    pub irn: String,
    pub surviving_irn: Option<String>,
    /// dd/MM/yyyy; today when absent.
    pub date: Option<String>,
}

#[derive(Default)]
struct Store {
    docs: HashMap<String, SimDoc>,
    tokens: HashMap<String, SimToken>,
    issued: Vec<String>,
    ack_seq: u64,
    stats: SimStats,
    /// E-way bills made by IRN, and those of `EwbDtls` once cancelled or updated (see `ewaybill`).
    ewbs: HashMap<String, SimEwb>,
}

/// GSTN's central de-duplication registry, shared by several simulated IRPs: a document one
/// IRP registered is refused by the others with 2295. While it is down ([`SimRegistry::set_down`])
/// every IRP registers on its own; when it comes back, the first registration of an IRN stands
/// and the later ones are marked REJ at their IRP (listed by its rejected-IRN API), as NIC's note
/// describes.
#[derive(Default)]
pub struct SimRegistry {
    inner: Mutex<RegistryState>,
}

#[derive(Default)]
struct RegistryState {
    down: bool,
    /// IRN → the IRP whose registration stands.
    owners: HashMap<String, String>,
    /// Registrations made while down, in order: (IRN, IRP, that IRP's core).
    pending: Vec<(String, String, std::sync::Weak<SimCore>)>,
    /// Every member IRP by name: NIC's two sides answer for each other (the `irp` header) and
    /// accept each other's tokens.
    members: HashMap<String, std::sync::Weak<SimCore>>,
}

impl SimRegistry {
    pub fn new() -> Arc<SimRegistry> {
        Arc::new(SimRegistry::default())
    }

    /// Take the registry down, or bring it back (settling what was registered meanwhile).
    pub fn set_down(&self, down: bool) {
        let mut st = self.inner.lock().expect("registry lock");
        st.down = down;
        if down {
            return;
        }
        for (irn, irp, core) in std::mem::take(&mut st.pending) {
            match st.owners.get(&irn) {
                Some(owner) if *owner != irp => {
                    if let Some(core) = core.upgrade() {
                        let _ = core.mark_rejected(&irn, Some(&irn), None);
                    }
                }
                Some(_) => {}
                None => {
                    st.owners.insert(irn, irp);
                }
            }
        }
    }

    /// The member IRP named `irp`, while it runs.
    pub fn member(&self, irp: &str) -> Option<Arc<SimCore>> {
        let st = self.inner.lock().expect("registry lock");
        st.members.get(&irp.to_ascii_uppercase()).and_then(std::sync::Weak::upgrade)
    }

    /// The IRP whose registration of `irn` stands, when the registry is up and knows one.
    pub fn owner(&self, irn: &str) -> Option<String> {
        let st = self.inner.lock().expect("registry lock");
        if st.down {
            return None;
        }
        st.owners.get(irn).cloned()
    }

    fn record(&self, irn: &str, irp: &str, core: std::sync::Weak<SimCore>) {
        let mut st = self.inner.lock().expect("registry lock");
        if st.down {
            st.pending.push((irn.to_string(), irp.to_string(), core));
        } else {
            st.owners.entry(irn.to_string()).or_insert_with(|| irp.to_string());
        }
    }
}

/// A simulated IRP's membership of a shared registry.
struct Membership {
    registry: Arc<SimRegistry>,
    irp: String,
    me: std::sync::Weak<SimCore>,
}

pub struct SimCore {
    store: Mutex<Store>,
    /// Set when this simulator is one of several IRPs sharing a de-duplication registry.
    membership: std::sync::OnceLock<Membership>,
    faults: Mutex<Faults>,
    /// Accepted API calls per client ID in the last 60 s (`rate_limit_per_minute`).
    quota: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// Every request received, in order (the last [`MAX_CALL_LOG`]).
    call_log: Mutex<VecDeque<SimCall>>,
    /// Draws for the probabilistic faults; seeded so a fault run can be repeated.
    rng: Mutex<rand::rngs::StdRng>,
    token_seq: AtomicU64,
    pub signing_key: RsaPrivateKey,
    /// The key signing now (`signing_key` with [`SIGNING_KID`], or after [`SimCore::rotate_signing_key`]
    /// the second one with [`SIGNING_KID_2`]), on ring, for the two signatures of every IRN.
    signer: std::sync::RwLock<Arc<(jwt::FastSigner, &'static str)>>,
    pub nic_key: RsaPrivateKey,
}

pub const SIGNING_PUBLIC_PEM: &str = include_str!("keys/signing-public.pem");
/// The second signing key, the one the simulator signs with once rotated (an IRP's key rotation).
pub const SIGNING_PUBLIC_PEM_2: &str = include_str!("keys/signing2-public.pem");
const SIGNING_PRIVATE_PEM_2: &str = include_str!("keys/signing2-private.pem");
/// The `kid` of the first and of the second signing key.
pub const SIGNING_KID: &str = "SIM-SIGNING-KEY";
pub const SIGNING_KID_2: &str = "SIM-SIGNING-KEY-2";
pub const NIC_PUBLIC_PEM: &str = include_str!("keys/nic-encryption-public.pem");
const SIGNING_PRIVATE_PEM: &str = include_str!("keys/signing-private.pem");
const NIC_PRIVATE_PEM: &str = include_str!("keys/nic-encryption-private.pem");

impl Default for SimCore {
    fn default() -> Self {
        Self::new()
    }
}

impl SimCore {
    pub fn new() -> SimCore {
        let signing_key = nic_crypto::parse_private_key_pem(SIGNING_PRIVATE_PEM).expect("bundled simulator key");
        SimCore {
            signer: std::sync::RwLock::new(Arc::new((
                jwt::FastSigner::new(&signing_key).expect("bundled simulator key"),
                SIGNING_KID,
            ))),
            store: Mutex::new(Store::default()),
            membership: std::sync::OnceLock::new(),
            quota: Mutex::new(HashMap::new()),
            call_log: Mutex::new(VecDeque::new()),
            faults: Mutex::new(Faults { token_ttl_secs: 3600, timeout_hang_ms: 3_000, ..Faults::default() }),
            rng: Mutex::new(rand::SeedableRng::from_entropy()),
            token_seq: AtomicU64::new(1),
            signing_key,
            nic_key: nic_crypto::parse_private_key_pem(NIC_PRIVATE_PEM).expect("bundled simulator key"),
        }
    }

    /// Make this simulator the IRP `irp` among those sharing `registry`.
    pub fn join_registry(self: &Arc<Self>, registry: Arc<SimRegistry>, irp: &str) {
        registry.inner.lock().expect("registry lock").members.insert(irp.to_ascii_uppercase(), Arc::downgrade(self));
        let _ = self.membership.set(Membership { registry, irp: irp.to_string(), me: Arc::downgrade(self) });
    }

    /// Rotate the signing key: `2` signs with the second key from now on, `1` with the first again.
    pub fn rotate_signing_key(&self, key: u8) -> &'static str {
        let (pem, kid) =
            if key == 2 { (SIGNING_PRIVATE_PEM_2, SIGNING_KID_2) } else { (SIGNING_PRIVATE_PEM, SIGNING_KID) };
        let private = nic_crypto::parse_private_key_pem(pem).expect("bundled simulator key");
        let signer = jwt::FastSigner::new(&private).expect("bundled simulator key");
        *self.signer.write().expect("signer lock") = Arc::new((signer, kid));
        kid
    }

    /// The `kid` signing now.
    pub fn signing_kid(&self) -> &'static str {
        self.signer.read().expect("signer lock").1
    }

    /// Sign `data` as the IRP signs now (its current key).
    pub fn sign(&self, data: &Value) -> String {
        let s = self.signer.read().expect("signer lock").clone();
        s.0.sign(data, s.1)
    }

    pub fn stats(&self) -> SimStats {
        self.store.lock().expect("sim lock").stats.clone()
    }
    /// Every request received so far (the last [`MAX_CALL_LOG`]), oldest first.
    pub fn calls(&self) -> Vec<SimCall> {
        self.call_log.lock().expect("sim lock").iter().cloned().collect()
    }
    pub fn log_call(&self, call: SimCall) {
        let mut log = self.call_log.lock().expect("sim lock");
        if log.len() >= MAX_CALL_LOG {
            log.pop_front();
        }
        log.push_back(call);
    }
    /// Seed the RNG behind the probabilistic faults (`fail_5xx_ratio`, `p_*`).
    pub fn seed(&self, seed: u64) {
        *self.rng.lock().expect("sim lock") = rand::SeedableRng::seed_from_u64(seed);
    }
    /// One draw with probability `p` from the seeded RNG.
    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("sim lock").gen_bool(p.min(1.0))
    }
    pub fn faults(&self) -> Faults {
        self.faults.lock().expect("sim lock").clone()
    }
    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().expect("sim lock") = f;
    }
    /// Change faults in place: `sim.update_faults(|f| f.fail_next_5xx = 3)`.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("sim lock"));
    }
    pub fn document(&self, irn: &str) -> Option<SimDoc> {
        self.store.lock().expect("sim lock").docs.get(irn).cloned()
    }
    /// Pretend a document was acknowledged `age` ago (to test the 24 h and 2-day windows).
    pub fn age_document(&self, irn: &str, age: chrono::Duration) {
        if let Some(d) = self.store.lock().expect("sim lock").docs.get_mut(irn) {
            d.ack_at = Utc::now() - age;
        }
    }
    /// Every token issued so far (tests check none of them leaks into logs, events or rows).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.store.lock().expect("sim lock").issued.clone()
    }
    /// Expire every token now (a token that expires mid-run).
    pub fn expire_tokens(&self) {
        for t in self.store.lock().expect("sim lock").tokens.values_mut() {
            t.expires_at = Utc::now() - chrono::Duration::seconds(1);
        }
    }

    /// Applied at the start of every API call (not auth): latency, 5xx, forced 1005.
    /// `Err(None)` = answer HTTP 503; `Err(Some(e))` = answer with that IRP error.
    pub async fn before_call(&self) -> Result<(), Option<SimError>> {
        let (latency, five, ratio, f1005, p1005) = {
            let mut f = self.faults.lock().expect("sim lock");
            let five = if f.outage {
                true
            } else if f.fail_next_5xx > 0 {
                f.fail_next_5xx -= 1;
                true
            } else {
                false
            };
            let f1005 = if !five && f.force_1005_next > 0 {
                f.force_1005_next -= 1;
                true
            } else {
                false
            };
            (f.latency_ms, five, f.fail_5xx_ratio, f1005, f.p_force_1005)
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if five || self.chance(ratio) {
            self.store.lock().expect("sim lock").stats.injected_5xx += 1;
            return Err(None);
        }
        if f1005 || self.chance(p1005) {
            self.store.lock().expect("sim lock").stats.injected_1005 += 1;
            return Err(Some(SimError::one("1005", "Invalid Token")));
        }
        Ok(())
    }

    /// The GSP's quota, checked first on every API call (not auth): `Err(secs)` = answer HTTP
    /// 429 with `Retry-After: secs`. A sliding 60 s window per client ID.
    pub fn check_quota(&self, client_id: &str) -> Result<(), u64> {
        let limit = {
            let mut f = self.faults.lock().expect("sim lock");
            if f.throttle_next > 0 {
                f.throttle_next -= 1;
                let secs = f.throttle_retry_after_secs;
                drop(f);
                self.count(|c| c.throttled_429 += 1);
                return Err(secs);
            }
            f.rate_limit_per_minute
        };
        let Some(limit) = limit else { return Ok(()) };
        let window = Duration::from_secs(60);
        let now = Instant::now();
        let refused = {
            let mut q = self.quota.lock().expect("sim lock");
            let calls = q.entry(client_id.to_string()).or_default();
            while calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
                calls.pop_front();
            }
            if calls.len() >= limit as usize {
                let frees_at = calls.front().map_or(now + window, |oldest| *oldest + window);
                Some(frees_at.saturating_duration_since(now).as_secs_f64().ceil().max(1.0) as u64)
            } else {
                calls.push_back(now);
                None
            }
        };
        match refused {
            Some(secs) => {
                self.count(|c| c.throttled_429 += 1);
                Err(secs)
            }
            None => Ok(()),
        }
    }

    /// Count one auth request as received, whatever becomes of it (the faces call this first,
    /// so requests refused before login, e.g. undecryptable ones, count too).
    pub fn count_auth_request(&self) {
        self.count(|c| c.auth_calls += 1);
    }

    /// Issue a token, or return the live one: NIC returns the same token for repeated auth
    /// calls within its lifetime, and a new one on a forced refresh in its last 10 minutes.
    pub fn authenticate(&self, gstin: &str, user: &str, password: &str, force: bool) -> Result<SimToken, SimError> {
        let (ttl, expected, renews) = {
            let f = self.faults.lock().expect("sim lock");
            (f.token_ttl_secs, f.passwords.get(gstin).cloned(), !f.early_renewal_refused)
        };
        let mut st = self.store.lock().expect("sim lock");
        if expected.is_some_and(|p| p != password) {
            return Err(SimError::one("1008", "Invalid login credentials"));
        }
        let now = Utc::now();
        let live = st.tokens.values().find(|t| t.gstin == gstin && t.user == user && t.expires_at > now).cloned();
        if let Some(t) = live {
            let in_last_10 = t.expires_at - now <= chrono::Duration::minutes(10);
            if !(force && in_last_10 && renews) {
                return Ok(t);
            }
            st.tokens.remove(&t.token);
        }
        let mut sek = [0u8; 32];
        rand::thread_rng().fill(&mut sek);
        let n = self.token_seq.fetch_add(1, Ordering::Relaxed);
        let t = SimToken {
            token: format!("simtok{n}{:016x}", rand::thread_rng().gen::<u64>()),
            gstin: gstin.to_string(),
            user: user.to_string(),
            expires_at: now + chrono::Duration::seconds(ttl as i64),
            sek,
        };
        st.tokens.insert(t.token.clone(), t.clone());
        st.issued.push(t.token.clone());
        Ok(t)
    }

    /// The live token behind an `AuthToken` header, checked against the caller's GSTIN. NIC's
    /// two sides accept each other's tokens (NIC's notice of 18 Jul 2024).
    pub fn check_token(&self, token: &str, gstin: &str) -> Result<SimToken, SimError> {
        self.own_token(token, gstin)
            .or_else(|| {
                let other = self.nic_side()?.other();
                self.membership.get()?.registry.member(other.irp())?.own_token(token, gstin)
            })
            .ok_or_else(|| SimError::one("1005", "Invalid Token"))
    }

    fn own_token(&self, token: &str, gstin: &str) -> Option<SimToken> {
        let st = self.store.lock().expect("sim lock");
        st.tokens.get(token).filter(|t| t.expires_at > Utc::now() && t.gstin.eq_ignore_ascii_case(gstin)).cloned()
    }

    /// This simulator's IRP name: its registry name, else NIC1.
    pub fn irp_name(&self) -> &str {
        self.membership.get().map(|m| m.irp.as_str()).unwrap_or("NIC1")
    }

    /// Which of NIC's sides this IRP is; `None` for a private IRP.
    pub fn nic_side(&self) -> Option<NicPortal> {
        NicPortal::from_irp(self.irp_name())
    }

    /// The e-way bill portal this IRP's e-way bills are made on (a private IRP's go to EWB1).
    pub fn ewb_portal(&self) -> NicPortal {
        self.nic_side().unwrap_or(NicPortal::One)
    }

    /// When an e-way bill made `now` for `km` is valid till: a day per 200 km, or `ewb_valid_hours`.
    pub(crate) fn ewb_valid_till(&self, now: DateTime<Utc>, km: u64) -> DateTime<Utc> {
        match self.faults.lock().expect("sim lock").ewb_valid_hours {
            Some(h) => now + chrono::Duration::hours(h as i64),
            None => now + chrono::Duration::days(crate::domain::command::ewaybill_extend::validity_days(km)),
        }
    }

    /// The first e-way bill number less one: third digit 1 on EWB1, 8 on EWB2.
    pub(crate) fn ewb_base(&self) -> u64 {
        match self.ewb_portal() {
            NicPortal::One => 181_000_000_000,
            NicPortal::Two => 188_000_000_000,
        }
    }

    /// The IRP whose data a call with NIC's `irp` header (`NIC1`/`NIC2`; empty: none) is about:
    /// this one, or the other NIC side. 3098 for any other value, or at a private IRP (which has
    /// no such bridge).
    pub fn cross_target(self: &Arc<Self>, header: &str) -> Result<Arc<SimCore>, SimError> {
        if header.trim().is_empty() {
            return Ok(self.clone());
        }
        let (Some(named), Some(_)) = (NicPortal::from_irp(header), self.nic_side()) else {
            return Err(SimError::one("3098", "Invalid IRP code"));
        };
        if named.irp().eq_ignore_ascii_case(self.irp_name()) {
            return Ok(self.clone());
        }
        let peer = self.membership.get().and_then(|m| m.registry.member(named.irp()));
        match peer {
            Some(p) => {
                self.count(|c| c.cross_portal_calls += 1);
                Ok(p)
            }
            // No other side running: the call finds only this side's data.
            None => Ok(self.clone()),
        }
    }

    /// The e-way bill API's actions on an existing e-way bill (`CANEWB`, `VEHEWB`,
    /// `EXTENDVALIDITY`, `UPDATETRANSPORTER`), at the portal that holds it. The other NIC portal
    /// takes Part B (`VEHEWB`) with the `irp` header naming the owner (TaxPro's note on NIC's
    /// interoperable services); everything else about the other portal's e-way bills is refused
    /// as NIC refuses it: 444/445 cancel, 446/447 transporter, 448/449 Part B without the header
    /// (and extension, which rewrites Part B: inferred, no source names its code).
    pub fn ewb_action(
        self: &Arc<Self>,
        gstin: &str,
        action: &str,
        req: &Value,
        irp_header: &str,
    ) -> Result<Value, SimError> {
        let target = self.ewb_owner(action, &ewaybill::text(req, "ewbNo"), irp_header)?;
        match action {
            "CANEWB" => target.cancel_ewaybill(gstin, req),
            "VEHEWB" => target.update_vehicle(gstin, req),
            "EXTENDVALIDITY" => target.extend_validity(gstin, req),
            "UPDATETRANSPORTER" => target.update_transporter(gstin, req),
            other => Err(SimError::one("5002", format!("unknown action '{other}'"))),
        }
    }

    fn ewb_owner(self: &Arc<Self>, action: &str, ewb_no: &str, irp_header: &str) -> Result<Arc<SimCore>, SimError> {
        let header = match irp_header.trim() {
            "" => None,
            h => Some(NicPortal::from_irp(h).ok_or_else(|| SimError::one("3098", "Invalid IRP code"))?),
        };
        let here = self.ewb_portal();
        let Some(owner) = EwbNo::parse(ewb_no.trim()).ok().and_then(|n| n.portal()).filter(|o| *o != here) else {
            return Ok(self.clone());
        };
        let from = owner.irp();
        let (code, message) = match (action, owner) {
            ("VEHEWB", _) if header == Some(owner) => {
                let peer = self.membership.get().and_then(|m| m.registry.member(from));
                self.count(|c| c.cross_portal_calls += 1);
                return Ok(peer.unwrap_or_else(|| self.clone()));
            }
            ("CANEWB", NicPortal::One) => {
                ("444", format!("This eway bill cannot be cancelled as it is generated from {from}"))
            }
            ("CANEWB", NicPortal::Two) => {
                ("445", format!("This eway bill cannot be cancelled as it is generated from {from}"))
            }
            ("UPDATETRANSPORTER", NicPortal::One) => {
                ("446", format!("Transport details cannot be updated here as it is generated from {from}"))
            }
            ("UPDATETRANSPORTER", NicPortal::Two) => {
                ("447", format!("Transport details cannot be updated here as it is generated from {from}"))
            }
            (_, NicPortal::One) => {
                ("448", format!("Part B cannot be updated as this Ewaybill Part A is generated in {from}"))
            }
            (_, NicPortal::Two) => {
                ("449", format!("Part B cannot be updated as this Ewaybill Part A is generated in {from}"))
            }
        };
        self.count(|c| c.portal_refusals += 1);
        Err(SimError::one(code, message))
    }

    fn count(&self, f: impl FnOnce(&mut SimStats)) {
        f(&mut self.store.lock().expect("sim lock").stats);
    }

    /// Generate an IRN. Returns the answer and, on the "timeout that still commits" fault,
    /// how long to hang before answering.
    pub fn generate(&self, gstin: &str, inv: &Value) -> (Result<Value, SimError>, Option<Duration>) {
        let s = |p: &str| inv.pointer(p).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        let (Some(seller), Some(typ), Some(no), Some(dt)) =
            (s("/SellerDtls/Gstin"), s("/DocDtls/Typ"), s("/DocDtls/No"), s("/DocDtls/Dt"))
        else {
            self.count(|c| c.generate_calls += 1);
            return (
                Err(SimError::one(
                    "2140",
                    "Request JSON is not as per schema: DocDtls and SellerDtls.Gstin are required",
                )),
                None,
            );
        };
        let irn = irn_for(&seller, &typ, &no, &dt);
        self.count(|c| {
            c.generate_calls += 1;
            *c.generate_per_irn.entry(irn.clone()).or_default() += 1;
        });
        if !seller.eq_ignore_ascii_case(gstin) {
            return (Err(SimError::one("2143", "Invoice does not belong to the user GSTIN")), None);
        }
        if let Some(m) = self.membership.get() {
            let ours = self.store.lock().expect("sim lock").docs.contains_key(&irn);
            if !ours && m.registry.owner(&irn).is_some_and(|o| o != m.irp) {
                return (
                    Err(SimError::one(
                        "2295",
                        "IRN is already generated and is registered with GSTN Lookup Portal by other IRP",
                    )),
                    None,
                );
            }
        }
        let faults = self.faults();
        let bad_hsn: Vec<String> = inv
            .get("ItemList")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        i.get("HsnCd").map(|h| h.as_str().map(str::to_string).unwrap_or_else(|| h.to_string()))
                    })
                    .filter(|h| faults.invalid_hsn.contains(h))
                    .collect()
            })
            .unwrap_or_default();
        if !bad_hsn.is_empty() {
            return (Err(SimError::one("2176", format!("HSN code(s) {} is invalid", bad_hsn.join(",")))), None);
        }
        for p in ["/BuyerDtls/Gstin", "/ShipDtls/Gstin"] {
            if let Some(g) = s(p) {
                if faults.inactive_gstins.iter().any(|x| x.eq_ignore_ascii_case(&g)) {
                    return (Err(SimError::one("3029", format!("GSTIN - {g} is not active"))), None);
                }
            }
        }
        // Reserve the AckNo under the lock and sign outside it: the two RS256 signatures are most
        // of a generate's cost, and holding the store meanwhile serialised every call.
        let seq = {
            let mut st = self.store.lock().expect("sim lock");
            if let Some(d) = st.docs.get(&irn) {
                return (Err(duplicate_irn(d)), None);
            }
            st.ack_seq += 1;
            st.ack_seq
        };
        // The AckNo's first digit names the IRP: 1 for e-Invoice1, 2 for e-Invoice2.
        let first = if self.nic_side() == Some(NicPortal::Two) { 212_010_000_000_000u64 } else { 112_010_000_000_000 };
        let ack_no = format!("{}", first + seq);
        let now = Utc::now();
        let ack_dt = format_ist(now);
        let mut signed = inv.clone();
        if let Some(o) = signed.as_object_mut() {
            o.insert("AckNo".into(), json!(ack_no.parse::<u64>().unwrap_or(0)));
            o.insert("AckDt".into(), json!(ack_dt));
            o.insert("Irn".into(), json!(irn));
        }
        let items = inv.get("ItemList").and_then(Value::as_array);
        let qr = json!({
            "SellerGstin": seller,
            "BuyerGstin": s("/BuyerDtls/Gstin").unwrap_or_default(),
            "DocNo": no, "DocTyp": typ, "DocDt": dt,
            "TotInvVal": inv.pointer("/ValDtls/TotInvVal").cloned().unwrap_or(Value::Null),
            "ItemCnt": items.map(|i| i.len()).unwrap_or(0),
            "MainHsnCode": items.and_then(|i| i.first()).and_then(|i| i.get("HsnCd")).cloned().unwrap_or(Value::Null),
            "Irn": irn, "IrnDt": ack_dt,
        });
        // NIC makes an e-way bill with the IRN only when EwbDtls carries Part-A (TransId) or Part-B
        // (vehicle or transport document); a bare Distance makes none, so the IRN stays cancellable
        // (gst_irn's own cancel test sends `EwbDtls: {"Distance": 10}` and gets a CancelDate).
        let ewb = inv.get("EwbDtls").filter(|e| has_ewb_part(e)).map(|_| {
            let n = format!("{}", 181_000_000_000u64 + seq);
            (n, ack_dt.clone(), format_ist(now + chrono::Duration::days(1)))
        });
        let doc = SimDoc {
            irn: irn.clone(),
            gstin: seller.to_ascii_uppercase(),
            doc_type: typ,
            doc_number: no,
            doc_date: dt,
            ack_no,
            ack_at: now,
            status: "ACT".into(),
            cancel_date: None,
            // The bench's stand-in answers unsigned tokens of the same shape (see `Faults::unsigned`).
            signed_invoice: if faults.unsigned {
                jwt::unsigned(&signed, "SIM-SIGNING-KEY")
            } else {
                self.sign(&signed)
            },
            signed_qr: if faults.unsigned { jwt::unsigned(&qr, "SIM-SIGNING-KEY") } else { self.sign(&qr) },
            ewb,
            rejected_on: None,
            surviving_irn: None,
        };
        let answer = doc_json(&doc);
        {
            let mut st = self.store.lock().expect("sim lock");
            // A concurrent call for the same document got there first: it owns the IRN.
            if let Some(d) = st.docs.get(&irn) {
                return (Err(duplicate_irn(d)), None);
            }
            st.stats.irns_created += 1;
            st.docs.insert(irn.clone(), doc);
        }
        if let Some(m) = self.membership.get() {
            m.registry.record(&irn, &m.irp, m.me.clone());
        }
        // The ambiguous case: the IRN is committed, but the answer comes too late.
        (Ok(answer), self.commit_hang())
    }

    /// After a generate committed: whether (and how long) to hang before answering, per the
    /// commit-then-timeout faults.
    pub(crate) fn commit_hang(&self) -> Option<Duration> {
        let hang = {
            let mut f = self.faults.lock().expect("sim lock");
            if f.timeout_commit_next > 0 {
                f.timeout_commit_next -= 1;
                Some(Duration::from_millis(f.timeout_hang_ms))
            } else {
                let (p, ms) = (f.p_commit_then_timeout, f.timeout_hang_ms);
                drop(f);
                self.chance(p).then(|| Duration::from_millis(ms))
            }
        };
        if hang.is_some() {
            self.count(|c| c.injected_commit_timeouts += 1);
        }
        hang
    }

    pub fn get_by_irn(&self, gstin: &str, irn: &str) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.lookups += 1;
        match st.docs.get(&irn.to_ascii_lowercase()) {
            Some(d) if d.gstin.eq_ignore_ascii_case(gstin) => fetchable(d),
            _ => Err(SimError::one("2148", "Requested IRN data is not available")),
        }
    }

    pub fn get_by_doc(&self, gstin: &str, typ: &str, no: &str, dt: &str) -> Result<Value, SimError> {
        let irn = irn_for(gstin, typ, no, dt);
        let mut st = self.store.lock().expect("sim lock");
        st.stats.lookups += 1;
        match st.docs.get(&irn) {
            Some(d) if d.doc_date == dt => fetchable(d),
            _ => Err(SimError::one("2154", "IRN details are not found")),
        }
    }

    pub fn cancel(&self, gstin: &str, irn: &str, reason: &str, remark: &str) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.cancel_calls += 1;
        if !matches!(reason, "1" | "2" | "3" | "4") {
            return Err(SimError::one("2261", "Invalid cancel reason"));
        }
        if remark.chars().count() > 100 {
            return Err(SimError::one("2140", "CnlRem must be at most 100 characters"));
        }
        let Some(d) = st.docs.get_mut(&irn.to_ascii_lowercase()).filter(|d| d.gstin.eq_ignore_ascii_case(gstin)) else {
            return Err(SimError::one("2148", "Requested IRN data is not available"));
        };
        if d.status == "CNL" {
            return Err(SimError::one("9999", "Invoice is not active"));
        }
        if Utc::now() - d.ack_at > chrono::Duration::hours(24) {
            return Err(SimError::one(
                "2270",
                "The allowed cancellation time limit is crossed, you cannot cancel the IRN",
            ));
        }
        if d.ewb.is_some() {
            return Err(SimError::one("2230", "This IRN cannot be cancelled because e-way bill has been generated"));
        }
        let cancel_date = format_ist(Utc::now());
        d.status = "CNL".into();
        d.cancel_date = Some(cancel_date.clone());
        Ok(json!({"Irn": d.irn, "CancelDate": cancel_date}))
    }

    pub fn gstin_details(&self, gstin: &str) -> Result<Value, SimError> {
        self.count(|c| c.other_calls += 1);
        let g = gstin.to_ascii_uppercase();
        if g.len() != 15 {
            return Err(SimError::one("3028", format!("GSTIN - {g} is invalid")));
        }
        let active = !self.faults().inactive_gstins.iter().any(|x| x.eq_ignore_ascii_case(&g));
        Ok(json!({
            "Gstin": g, "TradeName": format!("Trader {}", &g[2..7]), "LegalName": format!("Legal {}", &g[2..7]),
            "AddrBnm": "Sim Towers", "AddrBno": "1", "AddrFlno": "", "AddrSt": "MG Road", "AddrLoc": "Bengaluru",
            "StateCode": g[..2].parse::<u32>().unwrap_or(0), "AddrPncd": 560001, "TxpType": "REG",
            "Status": if active { "ACT" } else { "INA" }, "BlkStatus": "U", "DtReg": "2018-01-01", "DtDReg": null
        }))
    }

    pub fn sync_gstin(&self, gstin: &str) -> Result<Value, SimError> {
        {
            let mut f = self.faults.lock().expect("sim lock");
            if f.sync_activates.iter().any(|x| x.eq_ignore_ascii_case(gstin)) {
                f.inactive_gstins.retain(|x| !x.eq_ignore_ascii_case(gstin));
            }
        }
        self.gstin_details(gstin)
    }

    pub fn ewaybill_by_irn(&self, gstin: &str, irn: &str) -> Result<Value, SimError> {
        let mut st = self.store.lock().expect("sim lock");
        st.stats.other_calls += 1;
        match st.docs.get(&irn.to_ascii_lowercase()).filter(|d| d.gstin.eq_ignore_ascii_case(gstin)) {
            Some(SimDoc { ewb: Some((no, dt, till)), irn, .. }) => Ok(
                json!({"Irn": irn, "EwbNo": no.parse::<u64>().unwrap_or(0), "EwbDt": dt, "EwbValidTill": till, "Status": "ACT"}),
            ),
            Some(_) => Err(SimError::one("4003", "E-way bill is not generated for this IRN")),
            None => Err(SimError::one("2148", "Requested IRN data is not available")),
        }
    }

    pub fn rejected_irns(&self, gstin: &str, date: &str) -> Result<Value, SimError> {
        let Some(day) = NaiveDate::parse_from_str(date.trim(), "%d/%m/%Y").ok() else {
            return Err(SimError::one("2140", "date must be dd/mm/yyyy"));
        };
        let mut st = self.store.lock().expect("sim lock");
        st.stats.other_calls += 1;
        let list: Vec<Value> = st
            .docs
            .values()
            .filter(|d| d.gstin.eq_ignore_ascii_case(gstin) && d.rejected_on == Some(day))
            .map(|d| {
                json!({"Irn": d.irn, "AckNo": d.ack_no, "AckDt": format_ist(d.ack_at), "DocTyp": d.doc_type,
                       "DocNo": d.doc_number, "DocDt": d.doc_date, "SurvivingIrn": d.surviving_irn})
            })
            .collect();
        Ok(Value::Array(list))
    }

    /// Admin: mark an IRN rejected (de-duplication across IRPs failed) on `date` (dd/MM/yyyy).
    pub fn mark_rejected(&self, irn: &str, surviving: Option<&str>, date: Option<&str>) -> Result<(), String> {
        let day = match date {
            Some(d) => NaiveDate::parse_from_str(d, "%d/%m/%Y").map_err(|e| e.to_string())?,
            None => Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive(),
        };
        let mut st = self.store.lock().expect("sim lock");
        let d = st.docs.get_mut(irn).ok_or_else(|| format!("no IRN {irn}"))?;
        d.rejected_on = Some(day);
        d.surviving_irn = surviving.map(str::to_string);
        Ok(())
    }

    /// Admin: register a document directly (as if another IRP generated it), for reconciliation tests.
    pub fn insert_rejected_foreign(&self, gstin: &str, typ: &str, no: &str, dt: &str, day: NaiveDate) -> String {
        let irn = irn_for(gstin, typ, no, dt);
        let mut st = self.store.lock().expect("sim lock");
        st.ack_seq += 1;
        let ack_no = format!("{}", 112_010_000_000_000u64 + st.ack_seq);
        st.docs.insert(
            irn.clone(),
            SimDoc {
                irn: irn.clone(),
                gstin: gstin.to_string(),
                doc_type: typ.into(),
                doc_number: no.into(),
                doc_date: dt.into(),
                ack_no,
                ack_at: Utc::now(),
                status: "ACT".into(),
                cancel_date: None,
                signed_invoice: String::new(),
                signed_qr: String::new(),
                ewb: None,
                rejected_on: Some(day),
                surviving_irn: None,
            },
        );
        irn
    }

    pub fn b2c_qr(&self, gstin: &str, typ: &str, no: &str, dt: &str) -> Result<Value, SimError> {
        self.count(|c| c.other_calls += 1);
        let qr =
            json!({"SellerGstin": gstin, "DocNo": no, "DocTyp": typ, "DocDt": dt, "Irn": irn_for(gstin, typ, no, dt)});
        Ok(json!({"QRCode": self.sign(&qr)}))
    }
}

/// Whether `EwbDtls` has what NIC needs to generate an e-way bill with the IRN: a transporter ID
/// (Part-A) or a vehicle number / transport document (Part-B).
fn has_ewb_part(ewb: &Value) -> bool {
    ["TransId", "VehNo", "TransDocNo"].iter().any(|k| match ewb.get(*k) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    })
}

/// Lookups work for two days after acknowledgement, as at NIC (2283 afterwards).
/// 2150 with the existing IRN in `InfoDtls`, as the IRP answers a repeated generate.
fn duplicate_irn(d: &SimDoc) -> SimError {
    SimError {
        errors: vec![("2150".into(), "Duplicate IRN".into())],
        info: vec![
            json!({"InfCd": "DUPIRN", "Desc": {"AckNo": d.ack_no.parse::<u64>().unwrap_or(0), "AckDt": format_ist(d.ack_at), "Irn": d.irn}}),
        ],
    }
}

fn fetchable(d: &SimDoc) -> Result<Value, SimError> {
    if Utc::now() - d.ack_at > chrono::Duration::days(2) {
        return Err(SimError::one("2283", "IRN details cannot be provided as it is generated more than 2 days ago"));
    }
    Ok(doc_json(d))
}

fn doc_json(d: &SimDoc) -> Value {
    let mut v = json!({
        "AckNo": d.ack_no.parse::<u64>().unwrap_or(0), "AckDt": format_ist(d.ack_at), "Irn": d.irn,
        "SignedInvoice": d.signed_invoice, "SignedQRCode": d.signed_qr, "Status": d.status,
        "EwbNo": null, "EwbDt": null, "EwbValidTill": null, "Remarks": null
    });
    if let Some((no, dt, till)) = &d.ewb {
        v["EwbNo"] = json!(no.parse::<u64>().unwrap_or(0));
        v["EwbDt"] = json!(dt);
        v["EwbValidTill"] = json!(till);
    }
    v
}

/// IRN = SHA-256 hex of GSTIN + financial year + doc type + doc number (upper-case).
pub fn irn_for(gstin: &str, typ: &str, no: &str, dt: &str) -> String {
    let fy = NaiveDate::parse_from_str(dt.trim(), "%d/%m/%Y")
        .map(|d| {
            use chrono::Datelike;
            let y = if d.month() >= 4 { d.year() } else { d.year() - 1 };
            format!("{}-{:02}", y, (y + 1) % 100)
        })
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(gstin.trim().to_ascii_uppercase());
    h.update(fy);
    h.update(typ.trim().to_ascii_uppercase());
    h.update(no.trim().to_ascii_uppercase());
    hex::encode(h.finalize())
}
