//! PostgreSQL over TLS, with libpq's `sslmode` and `sslrootcert` meanings (tokio-postgres itself
//! knows only `disable|prefer|require` and verifies nothing):
//!
//! | `sslmode` | TLS | certificate |
//! |---|---|---|
//! | absent, `disable` | no | - |
//! | `prefer` | if the server offers it | not verified |
//! | `require` | yes | not verified (libpq's meaning); verified against a CA file when one is given, like `verify-ca` |
//! | `verify-ca` | yes | chains to the CA file |
//! | `verify-full` | yes | chains to the CA file, or to the system's store with `sslrootcert=system`, and names the host |
//!
//! The CA file: `EINVOICE_DATABASE_CA_FILE`, or `sslrootcert=<path>` in the URL (not both). As in
//! libpq, `verify-ca` and `verify-full` need one: without it they would accept any certificate a
//! public CA issued, for any host (`verify-ca`) or for a host name anyone can register a
//! certificate for once they control its DNS (`verify-full`). `sslrootcert=system` is libpq 16's
//! explicit opt-in to the system's store; it implies `verify-full` when `sslmode` is absent and
//! refuses any weaker mode.
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// How a URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed database URL and the TLS connector it needs (`None`: plain TCP).
pub struct Target {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub tls: Option<MakeRustlsConnect>,
}

/// Parse `url` (a `postgres://` URL or a `key=value` string), taking `sslmode` and `sslrootcert`
/// out of it so that libpq's `verify-ca`/`verify-full` and `sslrootcert=system` are understood.
pub fn target(url: &str, ca_file: Option<&str>) -> Result<Target, StoreError> {
    let (params, rest) = take_tls_params(url)?;
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Url(crate::config::scrub_url(&e.to_string(), url)))?;
    let (mode, roots_from) = tls_policy(&params, ca_file)?;
    use tokio_postgres::config::SslMode as Pg;
    config.ssl_mode(match mode {
        SslMode::Disable => Pg::Disable,
        SslMode::Prefer => Pg::Prefer,
        _ => Pg::Require,
    });
    let tls = match (mode, roots_from) {
        (SslMode::Disable, _) => None,
        (SslMode::Prefer, _) | (SslMode::Require, Roots::None) => Some(client_config(Verify::Nothing)),
        (SslMode::Require | SslMode::VerifyCa, roots) => Some(client_config(Verify::Chain(roots.load()?))),
        (SslMode::VerifyFull, roots) => Some(client_config(Verify::ChainAndName(roots.load()?))),
    };
    Ok(Target { config, mode, tls: tls.map(MakeRustlsConnect::new) })
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// None given: only `prefer`/`require` (no verification) may go on.
    None,
    /// A PEM file, and the setting that named it (for errors).
    File { path: String, from: &'static str },
    /// `sslrootcert=system`: the system's store.
    System,
}

impl Roots {
    fn load(self) -> Result<RootCertStore, StoreError> {
        match self {
            Roots::File { path, from } => roots_from_file(&path, from),
            Roots::System => {
                let mut store = RootCertStore::empty();
                store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if store.is_empty() {
                    return Err(StoreError::Url(
                        "sslrootcert=system: the system's certificate store holds no CA certificate; set \
                         EINVOICE_DATABASE_CA_FILE to the CA that signed the server's certificate"
                            .into(),
                    ));
                }
                Ok(store)
            }
            Roots::None => unreachable!("no verification needs no roots"),
        }
    }
}

/// `sslmode` and `sslrootcert` as the URL gives them.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    sslmode: Option<SslMode>,
    sslrootcert: Option<String>,
}

/// The mode and the CA source, with libpq's rules: `verify-ca`/`verify-full` need a CA file or
/// `sslrootcert=system`, and `sslrootcert=system` needs (and by default means) `verify-full`.
fn tls_policy(p: &TlsParams, ca_file: Option<&str>) -> Result<(SslMode, Roots), StoreError> {
    let system = p.sslrootcert.as_deref() == Some("system");
    let roots = match (p.sslrootcert.as_deref(), ca_file) {
        (Some(_), Some(_)) => {
            return Err(StoreError::Url(
                "both EINVOICE_DATABASE_CA_FILE and sslrootcert in EINVOICE_DATABASE_URL are set; set only one".into(),
            ))
        }
        (Some("system"), None) => Roots::System,
        (Some(path), None) => Roots::File { path: path.to_string(), from: "sslrootcert" },
        (None, Some(path)) => Roots::File { path: path.to_string(), from: "EINVOICE_DATABASE_CA_FILE" },
        (None, None) => Roots::None,
    };
    let mode = match p.sslmode {
        Some(m) => m,
        None if system => SslMode::VerifyFull,
        None => SslMode::Disable,
    };
    if system && mode != SslMode::VerifyFull {
        return Err(StoreError::Url(format!(
            "sslrootcert=system needs sslmode=verify-full (or no sslmode), not {}: any certificate a public CA \
             issued would pass a weaker check",
            mode.as_str()
        )));
    }
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && roots == Roots::None {
        return Err(StoreError::Url(format!(
            "sslmode={} needs the CA that signed PostgreSQL's certificate: set EINVOICE_DATABASE_CA_FILE (or \
             sslrootcert=<file> in EINVOICE_DATABASE_URL){}; without one, any certificate a public CA issued would pass",
            mode.as_str(),
            if mode == SslMode::VerifyFull { ", or add sslrootcert=system to trust the system's store" } else { "" }
        )));
    }
    Ok((mode, roots))
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl Target {
    /// Connect once (outside the pool); the connection task runs until the client is dropped.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        match &self.tls {
            Some(tls) => {
                let (c, conn) = self.config.connect(tls.clone()).await?;
                Ok((c, tokio::spawn(async move { drop(conn.await) })))
            }
            None => {
                let (c, conn) = self.config.connect(tokio_postgres::NoTls).await?;
                Ok((c, tokio::spawn(async move { drop(conn.await) })))
            }
        }
    }

    /// [`Target::connect`] for LISTEN: the connection's notifications come out of the receiver,
    /// which ends when the connection does.
    pub async fn connect_listening(
        &self,
    ) -> Result<
        (tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>),
        tokio_postgres::Error,
    > {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = match &self.tls {
            Some(tls) => {
                let (c, conn) = self.config.connect(tls.clone()).await?;
                forward_notifications(conn, tx);
                c
            }
            None => {
                let (c, conn) = self.config.connect(tokio_postgres::NoTls).await?;
                forward_notifications(conn, tx);
                c
            }
        };
        Ok((client, rx))
    }
}

/// Drive `conn`, sending its notifications to `tx` until it ends (or nobody listens).
fn forward_notifications<S, T>(
    mut conn: tokio_postgres::Connection<S, T>,
    tx: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::StreamExt as _;
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
}

/// Split `sslmode` and `sslrootcert` off a URL's query or a key-value string; the rest is for
/// tokio-postgres.
fn take_tls_params(url: &str) -> Result<(TlsParams, String), StoreError> {
    let mut params = TlsParams::default();
    let mut take = |key: &str, v: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => params.sslmode = Some(parse_sslmode(v)?),
            "sslrootcert" => params.sslrootcert = Some(v.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((params, url.to_string())) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let taken = match pair.split_once('=') {
                Some((k, v)) => take(k, &crate::config::percent_decode(v))?,
                None => false,
            };
            if !taken {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((params, rest));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        let taken = match word.split_once('=') {
            Some((k, v)) => take(k, v.trim_matches('\''))?,
            None => false,
        };
        if !taken {
            kept.push(word);
        }
    }
    Ok((params, kept.join(" ")))
}

fn parse_sslmode(v: &str) -> Result<SslMode, StoreError> {
    match v {
        "disable" | "allow" => Ok(SslMode::Disable),
        "prefer" => Ok(SslMode::Prefer),
        "require" => Ok(SslMode::Require),
        "verify-ca" => Ok(SslMode::VerifyCa),
        "verify-full" => Ok(SslMode::VerifyFull),
        other => Err(StoreError::Url(format!(
            "sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
        ))),
    }
}

/// The URL with `sslmode` and `sslrootcert` taken out: what tokio-postgres can parse (error
/// messages describe the server from it).
pub fn without_tls_params(url: &str) -> String {
    take_tls_params(url).map(|(_, rest)| rest).unwrap_or_else(|_| url.to_string())
}

fn roots_from_file(path: &str, from: &str) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    let pem = std::fs::read(path).map_err(|e| StoreError::Url(format!("{from} '{path}' cannot be read: {e}")))?;
    use rustls::pki_types::pem::PemObject;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| StoreError::Url(format!("{from} '{path}': {e}")))?;
        store.add(cert).map_err(|e| StoreError::Url(format!("{from} '{path}': {e}")))?;
    }
    if store.is_empty() {
        return Err(StoreError::Url(format!("{from} '{path}' holds no PEM certificate")));
    }
    Ok(store)
}

enum Verify {
    Nothing,
    Chain(RootCertStore),
    ChainAndName(RootCertStore),
}

fn client_config(verify: Verify) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let chain = match verify {
        Verify::ChainAndName(roots) => return builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Chain(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("a non-empty root store"),
        ),
        Verify::Nothing => None,
    };
    builder.dangerous().with_custom_certificate_verifier(Arc::new(Lenient { chain, provider })).with_no_client_auth()
}

/// What libpq checks short of `verify-full`: with `chain` (`verify-ca`, or `require` with a CA
/// file) the certificate must lead to a trusted CA but need not name the host; without it
/// (`require`/`prefer` without a CA) nothing is checked. Handshake signatures are always verified.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> (TlsParams, String) {
        take_tls_params(url).unwrap()
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_urls_and_key_value_strings() {
        let (p, rest) = params("postgres://u@db:5432/x?sslmode=verify-full&application_name=w");
        assert_eq!(
            (p.sslmode, rest.as_str()),
            (Some(SslMode::VerifyFull), "postgres://u@db:5432/x?application_name=w")
        );
        let (p, rest) = params("postgres://u@db/x?sslmode=require");
        assert_eq!((p.sslmode, rest.as_str()), (Some(SslMode::Require), "postgres://u@db/x"));
        let (p, rest) = params("host=db user=u sslmode=verify-ca dbname=x");
        assert_eq!((p.sslmode, rest.as_str()), (Some(SslMode::VerifyCa), "host=db user=u dbname=x"));
        assert_eq!(params("postgres://u@db/x").0, TlsParams::default());
        assert!(take_tls_params("postgres://u@db/x?sslmode=sometimes").is_err());
        let (p, rest) = params("postgres://u@db/x?sslrootcert=%2Fetc%2Fpg%20ca.pem&sslmode=verify-ca");
        assert_eq!(p.sslrootcert.as_deref(), Some("/etc/pg ca.pem"));
        assert_eq!(rest, "postgres://u@db/x");
        let (p, rest) = params("host=db sslrootcert=system dbname=x");
        assert_eq!((p.sslrootcert.as_deref(), rest.as_str()), (Some("system"), "host=db dbname=x"));
        assert_eq!(without_tls_params("postgres://u@db/x?sslmode=verify-full&sslrootcert=system"), "postgres://u@db/x");
    }

    fn policy(url: &str, ca_file: Option<&str>) -> Result<(SslMode, Roots), String> {
        tls_policy(&params(url).0, ca_file).map_err(|e| e.to_string())
    }

    #[test]
    fn verify_modes_need_a_ca_file_or_sslrootcert_system() {
        for mode in ["verify-ca", "verify-full"] {
            let e = policy(&format!("postgres://u@db/x?sslmode={mode}"), None).unwrap_err();
            assert!(e.contains(&format!("sslmode={mode} needs")) && e.contains("EINVOICE_DATABASE_CA_FILE"), "{e}");
            // The same through `target`: nothing connects on the system's store by default.
            assert!(target(&format!("host=db sslmode={mode}"), None).is_err());
        }
        let e = policy("postgres://u@db/x?sslmode=verify-full", None).unwrap_err();
        assert!(e.contains("sslrootcert=system"), "{e}");
        // A CA file from the setting or the URL.
        let file = |from| Roots::File { path: "/ca.pem".into(), from };
        assert_eq!(
            policy("postgres://u@db/x?sslmode=verify-ca", Some("/ca.pem")).unwrap(),
            (SslMode::VerifyCa, file("EINVOICE_DATABASE_CA_FILE"))
        );
        assert_eq!(
            policy("postgres://u@db/x?sslmode=verify-full&sslrootcert=/ca.pem", None).unwrap(),
            (SslMode::VerifyFull, file("sslrootcert"))
        );
        let e = policy("postgres://u@db/x?sslmode=verify-full&sslrootcert=/ca.pem", Some("/other.pem")).unwrap_err();
        assert!(e.contains("set only one"), "{e}");
        // The system's store only when asked for, only with verify-full, which it implies.
        assert_eq!(
            policy("postgres://u@db/x?sslmode=verify-full&sslrootcert=system", None).unwrap(),
            (SslMode::VerifyFull, Roots::System)
        );
        assert_eq!(policy("postgres://u@db/x?sslrootcert=system", None).unwrap(), (SslMode::VerifyFull, Roots::System));
        for weaker in ["disable", "prefer", "require", "verify-ca"] {
            let e = policy(&format!("postgres://u@db/x?sslmode={weaker}&sslrootcert=system"), None).unwrap_err();
            assert!(e.contains("sslrootcert=system needs sslmode=verify-full"), "{weaker}: {e}");
        }
        // Unverified modes are as before.
        assert_eq!(policy("postgres://u@db/x?sslmode=require", None).unwrap(), (SslMode::Require, Roots::None));
        assert_eq!(policy("postgres://u@db/x?sslmode=prefer", None).unwrap(), (SslMode::Prefer, Roots::None));
        assert_eq!(policy("postgres://u@db/x", None).unwrap(), (SslMode::Disable, Roots::None));
        assert!(target("postgres://u@db/x?sslmode=require", None).unwrap().tls.is_some());
        assert!(target("postgres://u@db/x", None).unwrap().tls.is_none());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let Err(e) = target("postgres://u@db/x?sslmode=verify-full", Some("/nonexistent/ca.pem")) else {
            panic!("accepted a missing CA file")
        };
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let Err(e) = target("postgres://u@db/x?sslmode=verify-ca&sslrootcert=/nonexistent/root.crt", None) else {
            panic!("accepted a missing CA file")
        };
        assert!(e.to_string().contains("sslrootcert '/nonexistent/root.crt'"), "{e}");
    }
}
