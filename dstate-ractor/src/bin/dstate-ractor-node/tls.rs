//! TLS settings from PEM files: every node presents `cert` (signed by `ca`) and trusts `ca`.

use std::path::Path;
use std::sync::Arc;

use dstate_ractor::tokio_rustls::rustls::crypto::aws_lc_rs;
use dstate_ractor::tokio_rustls::rustls::pki_types::pem::PemObject as _;
use dstate_ractor::tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use dstate_ractor::tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use dstate_ractor::tokio_rustls::{TlsAcceptor, TlsConnector};
use dstate_ractor::TlsSettings;

/// Build the settings; the provider is chosen explicitly so a build that links several
/// rustls crypto providers does not panic.
pub(crate) fn settings(
    ca: &Path,
    cert: &Path,
    key: &Path,
    server_name: &str,
) -> Result<TlsSettings, String> {
    let ca = CertificateDer::from_pem_file(ca).map_err(|e| format!("ca: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cert: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key: {e}"))?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| e.to_string())?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(server_name.to_string()).map_err(|e| format!("server name: {e}"))?;
    Ok(TlsSettings {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
        server_name,
    })
}
