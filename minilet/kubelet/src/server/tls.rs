//! TLS of the kubelet server: the serving certificate (`tlsCertFile`/`tlsPrivateKeyFile`,
//! or a self-signed pair kept under `rootDir/pki/`, as a kubelet makes without them) and
//! client authentication: only clients with a certificate from the client CA get in
//! (`clientCAFile`, or the CA of the API server in `kubeconfig`). The API server presents
//! its kubelet-client certificate, issued by that same CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::KubeletConfig;

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Bad PEM or kubeconfig content.
    #[error("{0}")]
    Bad(String),
    /// Certificate generation.
    #[error("certificate generation: {0}")]
    Gen(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|e| TlsError::Io(p.to_path_buf(), e))
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let v: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Bad(format!("{what}: bad PEM: {e}")))?;
    if v.is_empty() {
        return Err(TlsError::Bad(format!("{what}: no certificate in it")));
    }
    Ok(v)
}

/// The client CA's PEM: `clientCAFile`, else the CA of the kubeconfig; `None` when neither.
pub fn client_ca_pem(cfg: &KubeletConfig) -> Result<Option<Vec<u8>>, TlsError> {
    if let Some(p) = &cfg.client_ca_file {
        return read(p).map(Some);
    }
    let Some(kc) = &cfg.kubeconfig else { return Ok(None) };
    let text = read(kc)?;
    let v: serde_yaml::Value =
        serde_yaml::from_slice(&text).map_err(|e| TlsError::Bad(format!("{}: {e}", kc.display())))?;
    let cluster = &v["clusters"][0]["cluster"];
    if let Some(data) = cluster["certificate-authority-data"].as_str() {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| TlsError::Bad(format!("{}: certificate-authority-data: {e}", kc.display())))?;
        return Ok(Some(pem));
    }
    if let Some(file) = cluster["certificate-authority"].as_str() {
        let p = kc.parent().unwrap_or(Path::new("/")).join(file);
        return read(&p).map(Some);
    }
    Ok(None)
}

/// The serving certificate and key (PEM), from the config or self-signed under `rootDir/pki`.
fn serving_pair(cfg: &KubeletConfig) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    if let (Some(c), Some(k)) = (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        return Ok((read(c)?, read(k)?));
    }
    let dir = cfg.root_dir.join("pki");
    let (crt, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if crt.exists() && key.exists() {
        return Ok((read(&crt)?, read(&key)?));
    }
    std::fs::create_dir_all(&dir).map_err(|e| TlsError::Io(dir.clone(), e))?;
    let mut sans = vec![cfg.node_name.clone(), "localhost".to_string(), "127.0.0.1".to_string()];
    if let Some(ip) = &cfg.node_ip {
        sans.push(ip.clone());
    }
    let k = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(sans)?;
    p.distinguished_name.push(rcgen::DnType::CommonName, format!("{}@minilet", cfg.node_name));
    let cert = p.self_signed(&k)?;
    std::fs::write(&key, k.serialize_pem()).map_err(|e| TlsError::Io(key.clone(), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::write(&crt, cert.pem()).map_err(|e| TlsError::Io(crt.clone(), e))?;
    tracing::info!(path = %crt.display(), "generated a self-signed kubelet serving certificate");
    Ok((cert.pem().into_bytes(), k.serialize_pem().into_bytes()))
}

/// The server's rustls config, or `None` when no client CA is configured.
pub fn server_config(cfg: &KubeletConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let Some(ca_pem) = client_ca_pem(cfg)? else { return Ok(None) };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&ca_pem, "client CA")? {
        roots.add(c).map_err(|e| TlsError::Bad(format!("client CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Bad(format!("client CA: {e}")))?;
    let (crt, key) = serving_pair(cfg)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|e| TlsError::Bad(format!("serving key: {e}")))?
        .ok_or_else(|| TlsError::Bad("serving key: no key in it".into()))?;
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&crt, "serving certificate")?, key)?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(sc)))
}
