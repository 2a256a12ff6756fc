//! TLS on rustls (with the ring provider): the listeners' configuration, with client
//! certificates that authenticate as their subject CN, and the configuration of outgoing links,
//! which verify the peer against their own CA (or the system roots) and may present a
//! certificate.

use crate::config::{PeerAuth, TlsConfig};
use anyhow::{anyhow, Context};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the certificate file {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    rustls_pemfile::private_key(&mut std::io::BufReader::new(file))
        .with_context(|| format!("{} is not a PEM key file", path.display()))?
        .ok_or_else(|| anyhow!("{} holds no private key", path.display()))
}

fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .with_context(|| format!("{} holds an unusable CA certificate", path.display()))?;
    }
    Ok(roots)
}

/// The listeners' configuration from `[tls]`.
pub fn server_config(tls: &TlsConfig) -> anyhow::Result<Arc<ServerConfig>> {
    let cert = tls
        .cert_file
        .as_deref()
        .ok_or_else(|| anyhow!("tls.cert_file is not set"))?;
    let key = tls
        .key_file
        .as_deref()
        .ok_or_else(|| anyhow!("tls.key_file is not set"))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.ca_certs {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            let verifier = if tls.require_client_cert {
                verifier.build()
            } else {
                verifier.allow_unauthenticated().build()
            }
            .map_err(|e| anyhow!("tls.ca_certs: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| anyhow!("tls.cert_file and tls.key_file do not make a certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// The configuration of an outgoing link: the peer is verified against `auth.ca_certs`, or
/// `extra_ca` and the system roots; `auth.cert_file`/`key_file` are presented when set.
pub fn client_config(
    auth: &PeerAuth,
    extra_ca: Option<&Path>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let roots = match &auth.ca_certs {
        Some(ca) => roots(ca)?,
        None => {
            let mut system = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = system.add(cert);
            }
            if let Some(ca) = extra_ca {
                system.roots.extend(roots(ca)?.roots);
            }
            system
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (&auth.cert_file, &auth.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| anyhow!("cert_file and key_file do not make a certificate: {e}"))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The subject CN of the certificate a client presented (verified by the handshake).
pub fn peer_cn(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let first = certs?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
