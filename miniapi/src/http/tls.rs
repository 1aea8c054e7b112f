//! TLS material: a CA generated at first start and a serving certificate signed by
//! it, both kept under `<data-dir>/pki/` and reused on restart (the serving
//! certificate is re-issued only when its SANs change).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Certificate generation.
    #[error("certificate generation: {0}")]
    Gen(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("tls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// PEM parsing.
    #[error("bad PEM in {0}")]
    Pem(PathBuf),
}

/// The CA and serving certificate, PEM-encoded.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// CA certificate (goes into kubeconfigs and `kube-root-ca.crt`).
    pub ca_pem: String,
    /// Serving certificate.
    pub cert_pem: String,
    /// Serving key.
    pub key_pem: String,
}

fn read(p: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(p).map_err(|e| TlsError::Io(p.to_path_buf(), e))
}

fn write(p: &Path, data: &str) -> Result<(), TlsError> {
    std::fs::write(p, data).map_err(|e| TlsError::Io(p.to_path_buf(), e))?;
    #[cfg(unix)]
    if p.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| TlsError::Io(p.to_path_buf(), e))?;
    }
    Ok(())
}

/// The CA's certificate parameters (also used to issue other certificates with its key).
pub(crate) fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "minik-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    Ok(p)
}

/// Load the material from `dir`, creating what is missing.
pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<TlsMaterial, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.to_path_buf(), e))?;
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !ca_crt.exists() || !ca_key.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write(&ca_key, &key.serialize_pem())?;
        write(&ca_crt, &cert.pem())?;
        tracing::info!(path = %ca_crt.display(), "generated cluster CA");
    }
    let ca_pem = read(&ca_crt)?;
    let ca_key_pair = KeyPair::from_pem(&read(&ca_key)?)?;
    let (crt, key, sans_file) = (
        dir.join("apiserver.crt"),
        dir.join("apiserver.key"),
        dir.join("apiserver.sans"),
    );
    let wanted = sans.join(",");
    let current = std::fs::read_to_string(&sans_file).unwrap_or_default();
    if !crt.exists() || !key.exists() || current != wanted {
        let issuer = Issuer::new(ca_params()?, ca_key_pair);
        let mut p = CertificateParams::new(sans.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let k = KeyPair::generate()?;
        let cert = p.signed_by(&k, &issuer)?;
        write(&key, &k.serialize_pem())?;
        write(&crt, &cert.pem())?;
        write(&sans_file, &wanted)?;
        tracing::info!(sans = %wanted, "issued serving certificate");
    }
    Ok(TlsMaterial {
        ca_pem,
        cert_pem: read(&crt)?,
        key_pem: read(&key)?,
    })
}

/// A rustls server config (h2 and http/1.1) for the material.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut m.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem("apiserver.crt".into()))?;
    let key = rustls_pemfile::private_key(&mut m.key_pem.as_bytes())
        .map_err(|_| TlsError::Pem("apiserver.key".into()))?
        .ok_or_else(|| TlsError::Pem("apiserver.key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let a = load_or_create(dir.path(), &sans).expect("create");
        let b = load_or_create(dir.path(), &sans).expect("reuse");
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.cert_pem, b.cert_pem);
        assert!(server_config(&b).is_ok());
        let c = load_or_create(dir.path(), &["10.0.0.1".to_string()]).expect("reissue");
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.cert_pem, c.cert_pem);
    }
}
