//! IRP adapters: a small core trait, capability traits, two protocols (Whitebooks GSP and NIC
//! direct), and the shared session (token) cache. Job code talks to [`IrpProvider`] and the
//! capabilities it offers, and never knows which protocol is behind it.
//!
//! [`IrpProvider`] is identity and authentication. Every IRP the worker speaks to issues IRNs
//! ([`Irn`]), looks up GSTINs ([`Gstins`]) and makes e-way bills ([`Ewaybills`]), so those are
//! its supertraits; a capability only some IRPs have is asked for ([`IrpProvider::b2c`] for
//! [`B2cQr`]) and is `None` where the provider's type does not implement it.
pub mod errors;
pub mod ewaybill;
pub mod jwt;
pub mod nic;
pub mod nic_crypto;
pub mod qr;
pub mod registry;
pub mod session;
pub mod signing;
pub mod types;
pub mod verify;
pub mod whitebooks;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::ProviderKind;
use crate::domain::command::ewaybill::{EwbCancelReason, VehicleUpdate};
use crate::domain::command::ewaybill_extend::ExtendValidity;
use crate::domain::command::ewaybill_update_transporter::TransporterId;
use crate::domain::command::{CancelReason, DocRef};
use crate::domain::DocDate;

pub use errors::IrpError;
pub use ewaybill::{EwbByIrn, EwbCancelData, EwbData, ExtendData, TransporterData, VehicleData};
pub use session::{Session, SessionManager};
pub use types::{B2cQrCode, CancelData, GstinDetails, IrnData, RejectedIrn};

/// One GSTIN's connection to the IRP: who it is and how it authenticates. Implementations hold
/// that GSTIN's credentials; the calls themselves are the capability traits.
#[async_trait]
pub trait IrpProvider: Irn + Gstins + Ewaybills + Send + Sync {
    /// The protocol spoken (NIC direct or Whitebooks).
    fn kind(&self) -> ProviderKind;
    /// The IRP's name (`NIC1`, `NIC2`, `IRIS`, `whitebooks`, …): recorded on the IRNs it issues.
    fn irp(&self) -> &str;
    /// Sessions are cached per (this key, GSTIN): NIC-1 and NIC-2 accept one token (NIC's notice of
    /// 18 Jul 2024), every other IRP or GSP has its own.
    fn session_key(&self) -> String {
        match self.irp() {
            "NIC1" | "NIC2" => "nic".into(),
            other => other.to_ascii_lowercase(),
        }
    }
    /// This NIC IRP asking for data another NIC IRP holds (`irp: NIC1|NIC2` header on get, cancel
    /// and e-way bill calls); `None` where the IRP has no such bridge (every private IRP).
    fn cross_portal(&self, _issuer: &str) -> Option<std::sync::Arc<dyn IrpProvider>> {
        None
    }
    /// The credential's client ID (not a secret): the key of its rate limit and error budget.
    fn client_id(&self) -> &str;
    /// This credential's quota, when configured (`rate_limit`): calls are paced to it.
    fn rate_limit(&self) -> Option<crate::config::RateLimit> {
        None
    }
    /// Authenticate and return a new session. `force_refresh` asks the IRP for a new token
    /// even if the current one is still valid (NIC honours it only in the last 10 minutes).
    async fn authenticate(&self, force_refresh: bool) -> Result<Session, IrpError>;
    /// The IRP's B2C QR service, where it has one (`None`: NIC's direct API has none).
    fn b2c(&self) -> Option<&dyn B2cQr> {
        None
    }
}

/// IRNs: generate, look up, cancel, and the IRP's list of IRNs it rejected.
#[async_trait]
pub trait Irn: Send + Sync {
    /// Generate the IRN; `invoice`: the normalized invoice as JSON text ([`crate::domain::invoice::ValidInvoice::irp_text`]).
    async fn generate(&self, s: &Session, invoice: &str) -> Result<IrnData, IrpError>;
    /// An IRN's details, by the IRN.
    async fn get_by_irn(&self, s: &Session, irn: &str) -> Result<IrnData, IrpError>;
    /// An IRN's details, by the document it was generated for.
    async fn get_by_doc(&self, s: &Session, doc: &DocRef) -> Result<IrnData, IrpError>;
    /// Cancel an IRN.
    async fn cancel(&self, s: &Session, irn: &str, reason: CancelReason, remark: &str) -> Result<CancelData, IrpError>;
    /// The IRNs the IRP rejected on `date` (another IRP registered the document first).
    async fn rejected_irns(&self, s: &Session, date: DocDate) -> Result<Vec<RejectedIrn>, IrpError>;
}

/// GSTIN lookups: another taxpayer's registration as the IRP has it.
#[async_trait]
pub trait Gstins: Send + Sync {
    /// A GSTIN's registration details.
    async fn gstin_details(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError>;
    /// Ask the IRP to refresh its copy of a GSTIN from the GST common portal (3028/3029).
    async fn sync_gstin(&self, s: &Session, gstin: &str) -> Result<GstinDetails, IrpError>;
}

/// E-way bills made from IRNs: read, generate, cancel, Part B.
#[async_trait]
pub trait Ewaybills: Send + Sync {
    /// The e-way bill made from an IRN.
    async fn ewaybill_by_irn(&self, s: &Session, irn: &str) -> Result<EwbByIrn, IrpError>;
    /// Make an e-way bill from an IRN; `request` is the generate-by-IRN body (`Irn`, `Distance`, …).
    async fn generate_ewaybill(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError>;
    /// Cancel e-way bill `ewb_no`.
    async fn cancel_ewaybill(
        &self,
        s: &Session,
        ewb_no: &str,
        reason: EwbCancelReason,
        remark: &str,
    ) -> Result<EwbCancelData, IrpError>;
    /// Part B: a new vehicle (or transport document) for e-way bill `ewb_no`.
    async fn update_vehicle(&self, s: &Session, ewb_no: &str, update: &VehicleUpdate) -> Result<VehicleData, IrpError>;
    /// Extend e-way bill `ewb_no`'s validity (`EXTENDVALIDITY`).
    async fn extend_validity(&self, s: &Session, ewb_no: &str, extend: &ExtendValidity)
        -> Result<ExtendData, IrpError>;
    /// Make an e-way bill without an IRN (`GENEWAYBILL`); `request` is its payload.
    async fn generate_ewaybill_doc(&self, s: &Session, request: &Value) -> Result<EwbData, IrpError>;
    /// The e-way bill this GSTIN generated for a document (`GetEwayBillGeneratedByConsigner`,
    /// by document type and number); `None` when it has none (325).
    async fn ewaybill_by_doc(&self, s: &Session, doc_type: &str, doc_no: &str) -> Result<Option<EwbData>, IrpError>;
    /// Hand e-way bill `ewb_no` to another transporter (`UPDATETRANSPORTER`).
    async fn update_transporter(
        &self,
        s: &Session,
        ewb_no: &str,
        transporter: &TransporterId,
    ) -> Result<TransporterData, IrpError>;
}

/// The IRP's dynamic QR code for a B2C invoice (a GSP feature), offered through [`IrpProvider::b2c`].
#[async_trait]
pub trait B2cQr: Send + Sync {
    /// The QR code of the B2C invoice `doc`.
    async fn b2c_qr(&self, s: &Session, doc: &DocRef) -> Result<B2cQrCode, IrpError>;
}

/// The HTTP client every provider uses: explicit connect and read timeouts, rustls trusting the
/// system's certificate store; proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (reqwest's default).
/// Redirects are never followed: every IRP request carries credentials in its headers
/// (`client_secret`, `password`, `AuthToken`), which a followed redirect would send wherever the
/// `Location` points; a 3xx answer is [`IrpError::Redirect`] instead.
pub fn http_client(connect: std::time::Duration, read: std::time::Duration) -> reqwest::Client {
    client_builder(connect, read).build().expect("the HTTP client configuration is static and valid")
}

fn client_builder(connect: std::time::Duration, read: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        .timeout(connect + read)
        .user_agent(concat!("einvoice-worker/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}

/// [`http_client`] that also trusts the CA certificates in `ca_file` (PEM: a private CA, or a
/// TLS-inspecting proxy's), as `EINVOICE_HTTP_CA_FILE` asks.
pub fn http_client_with_ca(
    connect: std::time::Duration,
    read: std::time::Duration,
    ca_file: Option<&str>,
) -> Result<reqwest::Client, IrpError> {
    let mut b = client_builder(connect, read);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| IrpError::Config(format!("EINVOICE_HTTP_CA_FILE '{path}' cannot be read: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| IrpError::Config(format!("EINVOICE_HTTP_CA_FILE '{path}' is not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(IrpError::Config(format!("EINVOICE_HTTP_CA_FILE '{path}' holds no certificate")));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| IrpError::Config(format!("building the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::http::{header::LOCATION, HeaderMap, StatusCode};
    use axum::routing::any;
    use axum::Router;

    use super::*;
    use crate::domain::outcome::{Class, Operation};

    async fn serve(app: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// An IRP that answers every request with a redirect to a second listener, which records
    /// whatever reaches it: nothing may, since the request's headers are the GSTIN's credentials.
    #[tokio::test]
    async fn a_redirect_is_not_followed_and_no_credential_leaves() {
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let rec = seen.clone();
        let elsewhere = Router::new().fallback(any(move |h: HeaderMap| {
            rec.lock().unwrap().push(h);
            async { r#"{"status_cd":"1","data":{"AuthToken":"t"}}"# }
        }));
        let target = format!("http://{}/collect", serve(elsewhere).await);
        let status = Arc::new(AtomicU16::new(302));
        let (s, t) = (status.clone(), target.clone());
        let irp = Router::new().fallback(any(move || {
            let code = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
            let t = t.clone();
            async move { (code, [(LOCATION, t)], "moved") }
        }));
        let base = format!("http://{}", serve(irp).await);
        let settings = crate::config::Settings::from_toml(&format!(
            "[gstins.\"29AAGCP4821K1Z3\"]\nprovider = \"whitebooks\"\nbase_url = \"{base}\"\nusername = \"u\"\n\
             password = \"pw-S3CRET\"\nclient_id = \"c\"\nclient_secret = \"cs-S3CRET\"\n"
        ))
        .unwrap();
        let providers = registry::Providers::from_settings(&settings).unwrap();
        let p = providers.get("29AAGCP4821K1Z3").unwrap();
        for code in [301, 302, 303, 307, 308] {
            status.store(code, Ordering::SeqCst);
            let e = p.authenticate(false).await.unwrap_err();
            assert!(matches!(e, IrpError::Redirect { status, .. } if status == code), "{code}: {e:?}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("the IRP answered with a redirect to {target}"))
                    && text.contains("redirects are not followed (credentials would leak)"),
                "{text}"
            );
            // A wrong base_url: a configuration error (the GSTIN pauses), not a retry loop.
            assert_eq!(e.table_class(Operation::Auth), Class::Configuration);
            assert_eq!(e.class(Operation::Generate), crate::domain::outcome::Final::Configuration);
            assert!(!e.may_have_reached_irp() && !e.is_error_response());
            assert_eq!(e.to_error_items()[0].code, format!("HTTP_{code}"));
        }
        // An API call (AuthToken header and the invoice body) is not followed either.
        let session = Session {
            token: secrecy::SecretString::from("tok-S3CRET"),
            sek: None,
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            obtained_at: chrono::Utc::now(),
        };
        let e = p.generate(&session, "{}").await.unwrap_err();
        assert!(matches!(e, IrpError::Redirect { .. }), "{e:?}");
        assert!(seen.lock().unwrap().is_empty(), "a request followed the redirect: {:?}", seen.lock().unwrap());
    }
}
