//! SIP over TLS: the server configuration (rustls) from the operator's PEM files.

use std::sync::Arc;

/// The TLS server configuration from PEM files (`sip.tls_cert`: the certificate chain,
/// `sip.tls_key`: its private key). The error names the file and what is wrong.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("sip.tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("sip.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sip.tls_cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("sip.tls_key {}: {e}", key.display()))?;
    // ring, not aws-lc-rs: no second large C build in every CI run. rustls deprecates
    // ring's provider for lacking post-quantum key exchange; classical ECDHE it has.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("sip.tls_cert / sip.tls_key: {e}"))?;
    Ok(Arc::new(cfg))
}
