//! A site CA and certificates made for one test run (rcgen): the server's for 127.0.0.1 and
//! localhost, and clients' with a chosen subject CN, all as PEM files in a temporary directory.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;

pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    /// The CA certificate (PEM): `tls.ca_certs`, a client's `ca_file`.
    pub ca_file: PathBuf,
    /// The server's certificate and key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl Pki {
    /// A CA named `ca_name`, and a server certificate it signed.
    pub fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name(ca_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let pki = Pki {
            cert_file: dir.path().join("server.pem"),
            key_file: dir.path().join("server.key"),
            dir,
            ca,
            ca_key,
            ca_file,
        };
        let (cert, key) = pki.issue(
            "m2mhub",
            vec!["127.0.0.1".into(), "localhost".into(), "::1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        std::fs::write(&pki.cert_file, cert).unwrap();
        std::fs::write(&pki.key_file, key).unwrap();
        pki
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = name(cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate with subject CN `cn`: its files (certificate, key).
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(cn, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);
        let cert_file = self.dir.path().join(format!("{cn}.pem"));
        let key_file = self.dir.path().join(format!("{cn}.key"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        (cert_file, key_file)
    }
}
