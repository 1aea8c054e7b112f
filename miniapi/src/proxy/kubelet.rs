//! The API server's client for kubelets: HTTPS with a client certificate
//! (`CN=kube-apiserver-kubelet-client`, `O=system:masters`) issued by the cluster CA and
//! kept in `<data-dir>/pki/apiserver-kubelet-client.{crt,key}`; kubelets accept clients
//! whose certificate chains to that CA (minilet's `clientCAFile`). As kube-apiserver
//! without `--kubelet-certificate-authority`, the kubelet's serving certificate (often
//! self-signed) is not verified; the TLS handshake's signatures still are.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::http::tls::{self, TlsError, TlsMaterial};

/// Failures talking to a kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// TCP or TLS.
    #[error("error dialing backend: {0}")]
    Dial(String),
    /// HTTP.
    #[error("error talking to the kubelet: {0}")]
    Http(String),
}

#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn write_file(p: &Path, data: &str) -> Result<(), TlsError> {
    std::fs::write(p, data).map_err(|e| TlsError::Io(p.to_path_buf(), e))?;
    if p.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(|e| TlsError::Io(p.to_path_buf(), e))?;
    }
    Ok(())
}

/// Loads the kubelet-client certificate from `pki`, issuing it with the CA if missing.
fn client_cert(pki: &Path) -> Result<(String, String), TlsError> {
    let (crt, key) = (pki.join("apiserver-kubelet-client.crt"), pki.join("apiserver-kubelet-client.key"));
    if !crt.exists() || !key.exists() {
        let ca_key_pem = std::fs::read_to_string(pki.join("ca.key")).map_err(|e| TlsError::Io(pki.join("ca.key"), e))?;
        let issuer = Issuer::new(tls::ca_params()?, KeyPair::from_pem(&ca_key_pem)?);
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver-kubelet-client");
        dn.push(DnType::OrganizationName, "system:masters");
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let k = KeyPair::generate()?;
        let cert = p.signed_by(&k, &issuer)?;
        write_file(&key, &k.serialize_pem())?;
        write_file(&crt, &cert.pem())?;
        tracing::info!(path = %crt.display(), "issued the kubelet client certificate");
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| TlsError::Io(p.to_path_buf(), e));
    Ok((read(&crt)?, read(&key)?))
}

/// Connections to kubelets.
#[derive(Clone)]
pub struct KubeletClient {
    tls: TlsConnector,
}

impl KubeletClient {
    /// Prepares the client certificate (under `pki`, next to the CA of `material`).
    pub fn new(_material: &TlsMaterial, pki: &Path) -> Result<Self, TlsError> {
        let (crt, key) = client_cert(pki)?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut crt.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::Pem(pki.join("apiserver-kubelet-client.crt")))?;
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .map_err(|_| TlsError::Pem(pki.join("apiserver-kubelet-client.key")))?
            .ok_or_else(|| TlsError::Pem(pki.join("apiserver-kubelet-client.key")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: TlsConnector::from(Arc::new(cfg)) })
    }

    /// Sends one request to the kubelet at `addr` on a new connection (kept open for
    /// streaming and upgrades).
    pub async fn send(&self, addr: SocketAddr, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, KubeletError> {
        let dial = |e: String| KubeletError::Dial(format!("dial tcp {addr}: {e}"));
        let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| dial("i/o timeout".into()))?
            .map_err(|e| dial(e.to_string()))?;
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = self.tls.connect(name, tcp).await.map_err(|e| dial(format!("tls: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| KubeletError::Http(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        sender.send_request(req).await.map_err(|e| KubeletError::Http(e.to_string()))
    }
}
