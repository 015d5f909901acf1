//! PostgreSQL over TLS, with libpq's `sslmode` meanings (tokio-postgres itself knows only
//! `disable|prefer|require` and verifies nothing):
//!
//! | `sslmode` | TLS | certificate |
//! |---|---|---|
//! | absent, `disable` | no | - |
//! | `prefer` | if the server offers it | not verified |
//! | `require` | yes | not verified (libpq's meaning); verified against `EINVOICE_DATABASE_CA_FILE` when set, like `verify-ca` |
//! | `verify-ca` | yes | chains to a trusted CA |
//! | `verify-full` | yes | chains to a trusted CA and names the host |
//!
//! Trusted CAs: `EINVOICE_DATABASE_CA_FILE` (PEM) when set, else the system's store.
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

/// Parse `url` (a `postgres://` URL or a `key=value` string), taking `sslmode` out of it so that
/// libpq's `verify-ca`/`verify-full` are understood.
pub fn target(url: &str, ca_file: Option<&str>) -> Result<Target, StoreError> {
    let (mode, rest) = take_sslmode(url)?;
    let mut config: tokio_postgres::Config =
        rest.parse().map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
    use tokio_postgres::config::SslMode as Pg;
    config.ssl_mode(match mode {
        SslMode::Disable => Pg::Disable,
        SslMode::Prefer => Pg::Prefer,
        _ => Pg::Require,
    });
    let tls = match mode {
        SslMode::Disable => None,
        SslMode::Prefer => Some(client_config(Verify::Nothing)),
        SslMode::Require if ca_file.is_none() => Some(client_config(Verify::Nothing)),
        SslMode::Require | SslMode::VerifyCa => Some(client_config(Verify::Chain(roots(ca_file)?))),
        SslMode::VerifyFull => Some(client_config(Verify::ChainAndName(roots(ca_file)?))),
    };
    Ok(Target { config, mode, tls: tls.map(MakeRustlsConnect::new) })
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
}

/// Split `sslmode` off a URL's query or a key-value string.
fn take_sslmode(url: &str) -> Result<(SslMode, String), StoreError> {
    let parse = |v: &str| match v {
        "disable" | "allow" => Ok(SslMode::Disable),
        "prefer" => Ok(SslMode::Prefer),
        "require" => Ok(SslMode::Require),
        "verify-ca" => Ok(SslMode::VerifyCa),
        "verify-full" => Ok(SslMode::VerifyFull),
        other => Err(StoreError::Url(format!(
            "sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
        ))),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((SslMode::Disable, url.to_string())) };
        let mut mode = SslMode::Disable;
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = parse(v)?,
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((mode, rest));
    }
    let mut mode = SslMode::Disable;
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = parse(v)?,
            _ => kept.push(word),
        }
    }
    Ok((mode, kept.join(" ")))
}

fn roots(ca_file: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::Url(format!("EINVOICE_DATABASE_CA_FILE '{path}' cannot be read: {e}")))?;
            use rustls::pki_types::pem::PemObject;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| StoreError::Url(format!("EINVOICE_DATABASE_CA_FILE '{path}': {e}")))?;
                store.add(cert).map_err(|e| StoreError::Url(format!("EINVOICE_DATABASE_CA_FILE '{path}': {e}")))?;
            }
            if store.is_empty() {
                return Err(StoreError::Url(format!("EINVOICE_DATABASE_CA_FILE '{path}' holds no PEM certificate")));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
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

    #[test]
    fn sslmode_is_taken_out_of_urls_and_key_value_strings() {
        let (m, rest) = take_sslmode("postgres://u@db:5432/x?sslmode=verify-full&application_name=w").unwrap();
        assert_eq!((m, rest.as_str()), (SslMode::VerifyFull, "postgres://u@db:5432/x?application_name=w"));
        let (m, rest) = take_sslmode("postgres://u@db/x?sslmode=require").unwrap();
        assert_eq!((m, rest.as_str()), (SslMode::Require, "postgres://u@db/x"));
        let (m, rest) = take_sslmode("host=db user=u sslmode=verify-ca dbname=x").unwrap();
        assert_eq!((m, rest.as_str()), (SslMode::VerifyCa, "host=db user=u dbname=x"));
        assert_eq!(take_sslmode("postgres://u@db/x").unwrap().0, SslMode::Disable);
        assert!(take_sslmode("postgres://u@db/x?sslmode=sometimes").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let Err(e) = target("postgres://u@db/x?sslmode=verify-full", Some("/nonexistent/ca.pem")) else {
            panic!("accepted a missing CA file")
        };
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
