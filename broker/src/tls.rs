//! HTTPS served by the broker itself (`--tls-cert`, `--tls-key`), for
//! deployments with no TLS-terminating proxy in front of it.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::BrokerConfig;

/// The TLS acceptor of `config`'s certificate and key, or `None` when the
/// broker serves plain HTTP. The error names the setting at fault, never
/// the key's contents.
pub fn acceptor(config: &BrokerConfig) -> Result<Option<TlsAcceptor>, String> {
    // An empty setting (compose's `${X:-}`) is an unset one.
    let given = |path: &Option<std::path::PathBuf>| {
        path.clone().filter(|path| !path.as_os_str().is_empty())
    };
    match (&given(&config.tls_cert), &given(&config.tls_key)) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => server_config(cert, key).map(|tls| Some(TlsAcceptor::from(tls))),
        _ => Err(
            "KEYLEASE_BROKER_TLS_CERT (--tls-cert) and KEYLEASE_BROKER_TLS_KEY (--tls-key) go together"
                .to_owned(),
        ),
    }
}

/// HTTP/1.1 over TLS 1.2 or 1.3 with `cert` (a PEM chain, leaf first) and `key`.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            format!(
                "KEYLEASE_BROKER_TLS_CERT (--tls-cert) {}: {err}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "KEYLEASE_BROKER_TLS_CERT (--tls-cert) {} holds no PEM certificate",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        format!(
            "KEYLEASE_BROKER_TLS_KEY (--tls-key) {}: {err}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|err| {
            format!(
                "KEYLEASE_BROKER_TLS_CERT (--tls-cert) {} and KEYLEASE_BROKER_TLS_KEY (--tls-key) {} are not a usable certificate and its key: {err}",
                cert.display(),
                key.display()
            )
        })?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}
