//! TLS for a PostgreSQL connection: the rustls `ClientConfig` (ring provider) that a URL's
//! `sslmode` asks for, with libpq's meaning of each mode.
//!
//! - `verify-full`: the server's chain is checked against the root certificates
//!   (`sslrootcert`, a PEM file; by default `~/.postgresql/root.crt`) and so is its name.
//! - `verify-ca`: the chain is checked, the name is not.
//! - `require`: encrypted, unverified; but when the root certificate file exists, checked
//!   like `verify-ca` (libpq's rule).
//! - `prefer`: TLS unverified when the server offers it, plain otherwise.
//! - `disable`: never TLS.
//!
//! It must not: use OpenSSL or aws-lc, or touch the network (it reads one PEM file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::url::{PostgresUrl, SslMode};

/// What a connection does about TLS.
pub enum TlsPlan {
    /// `sslmode=disable`: plain TCP.
    Plain,
    /// TLS with this configuration; `required` is false for `prefer` (plain when the
    /// server does not offer TLS).
    Tls {
        config: Box<ClientConfig>,
        required: bool,
        verification: Verification,
    },
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    None,
    Chain,
    ChainAndName,
}

/// Why no TLS configuration could be made; names the file.
#[derive(Debug, thiserror::Error)]
pub enum PostgresTlsError {
    #[error(
        "root certificate file {path} does not exist: sslmode={mode} verifies the server; \
         give sslrootcert=FILE or change sslmode"
    )]
    RootCertMissing { path: PathBuf, mode: &'static str },
    #[error("cannot read root certificate file {path}: {reason}")]
    RootCertUnreadable { path: PathBuf, reason: String },
    #[error("root certificate file {path} holds no PEM certificate")]
    RootCertEmpty { path: PathBuf },
    #[error("cannot build the TLS configuration: {0}")]
    Rustls(String),
}

/// libpq's default root certificate file: `~/.postgresql/root.crt`.
pub fn default_root_cert(home: Option<&Path>) -> Option<PathBuf> {
    home.map(|home| home.join(".postgresql").join("root.crt"))
}

/// The TLS plan for `url`. `home` is the user's home directory, for the default root
/// certificate file when the URL gives no `sslrootcert`.
pub fn tls_plan(url: &PostgresUrl, home: Option<&Path>) -> Result<TlsPlan, PostgresTlsError> {
    let root_file = url
        .ssl_root_cert()
        .map(Path::to_path_buf)
        .or_else(|| default_root_cert(home));
    let mode = url.ssl_mode();
    let verification = match mode {
        SslMode::Disable => return Ok(TlsPlan::Plain),
        SslMode::Prefer => Verification::None,
        SslMode::Require => match &root_file {
            Some(path) if path.exists() => Verification::Chain,
            _ => Verification::None,
        },
        SslMode::VerifyCa => Verification::Chain,
        SslMode::VerifyFull => Verification::ChainAndName,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verification {
        Verification::None => Arc::new(AnyCertificate {
            provider: provider.clone(),
        }),
        Verification::Chain | Verification::ChainAndName => {
            let path = root_file.ok_or_else(|| PostgresTlsError::RootCertMissing {
                path: PathBuf::from("~/.postgresql/root.crt"),
                mode: mode.as_str(),
            })?;
            let roots = read_roots(&path, mode)?;
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|error| PostgresTlsError::Rustls(error.to_string()))?;
            if verification == Verification::Chain {
                Arc::new(ChainOnly { webpki })
            } else {
                webpki
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| PostgresTlsError::Rustls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsPlan::Tls {
        config: Box::new(config),
        required: mode != SslMode::Prefer,
        verification,
    })
}

fn read_roots(path: &Path, mode: SslMode) -> Result<Arc<rustls::RootCertStore>, PostgresTlsError> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => PostgresTlsError::RootCertMissing {
            path: path.to_path_buf(),
            mode: mode.as_str(),
        },
        _ => PostgresTlsError::RootCertUnreadable {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| PostgresTlsError::RootCertUnreadable {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        roots
            .add(certificate)
            .map_err(|error| PostgresTlsError::RootCertUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            })?;
    }
    if roots.is_empty() {
        return Err(PostgresTlsError::RootCertEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(Arc::new(roots))
}

/// `verify-ca` (and `require` with a root file): the chain must lead to a trusted root;
/// the name is not checked. webpki checks the chain before the name, so a name error
/// means the chain passed.
#[derive(Debug)]
struct ChainOnly {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root file: encrypted, the certificate not checked
/// (libpq's meaning); the handshake's signatures still are.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(url: &str, home: Option<&Path>) -> Result<TlsPlan, PostgresTlsError> {
        tls_plan(&PostgresUrl::parse(url).unwrap(), home)
    }

    fn verification(result: Result<TlsPlan, PostgresTlsError>) -> Option<(Verification, bool)> {
        match result.unwrap() {
            TlsPlan::Plain => None,
            TlsPlan::Tls {
                verification,
                required,
                ..
            } => Some((verification, required)),
        }
    }

    fn ca_file(dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).unwrap();
        let path = dir.join("root.pem");
        std::fs::write(&path, certificate.pem()).unwrap();
        path
    }

    #[test]
    fn each_sslmode_verifies_what_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_file(dir.path());
        let no_home = None;
        assert_eq!(
            verification(plan("postgres://u@h/d?sslmode=disable", no_home)),
            None
        );
        assert_eq!(
            verification(plan("postgres://u@h/d", no_home)),
            Some((Verification::None, false))
        );
        assert_eq!(
            verification(plan("postgres://u@h/d?sslmode=require", no_home)),
            Some((Verification::None, true))
        );
        let with_root = |mode: &str| {
            format!(
                "postgres://u@h/d?sslmode={mode}&sslrootcert={}",
                ca.display()
            )
        };
        assert_eq!(
            verification(plan(&with_root("require"), no_home)),
            Some((Verification::Chain, true))
        );
        assert_eq!(
            verification(plan(&with_root("verify-ca"), no_home)),
            Some((Verification::Chain, true))
        );
        assert_eq!(
            verification(plan(&with_root("verify-full"), no_home)),
            Some((Verification::ChainAndName, true))
        );
    }

    #[test]
    fn the_default_root_file_is_under_home() {
        let home = tempfile::tempdir().unwrap();
        let error = plan("postgres://u@h/d?sslmode=verify-full", Some(home.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(".postgresql/root.crt") && error.contains("does not exist"),
            "{error}"
        );
        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        let ca = ca_file(home.path());
        std::fs::rename(ca, home.path().join(".postgresql/root.crt")).unwrap();
        assert_eq!(
            verification(plan("postgres://u@h/d?sslmode=require", Some(home.path()))),
            Some((Verification::Chain, true))
        );
    }

    #[test]
    fn a_bad_root_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-pem.txt");
        std::fs::write(&path, "hello").unwrap();
        let url = format!(
            "postgres://u@h/d?sslmode=verify-ca&sslrootcert={}",
            path.display()
        );
        let error = plan(&url, None).err().unwrap().to_string();
        assert!(
            error.contains("not-pem.txt") && error.contains("no PEM"),
            "{error}"
        );
        let error = plan("postgres://u@h/d?sslmode=verify-ca", None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }
}
