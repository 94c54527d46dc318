//! A throwaway PKI for the TLS tests: a CA, a server certificate it signed, and an unrelated
//! second CA, written as PEM files into a temp dir (removed on drop).

use std::path::PathBuf;

use crate::util::TempDir;

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "upstream.test"];

/// Test certificates made with `rcgen` (ECDSA P-256), valid from now for the default span.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Makes the CA, the server certificate (for [`SERVER_NAMES`]) and the other CA.
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let dir = TempDir::new("pki");
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new())
                .unwrap_or_else(|e| panic!("CA params: {e}"));
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
            let cert = p
                .self_signed(&key)
                .unwrap_or_else(|e| panic!("CA cert: {e}"));
            (cert.pem(), Issuer::new(p, key))
        };
        let (ca_pem, issuer) = ca("weir tests CA");
        let (other_pem, _) = ca("some other CA");
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap_or_else(|e| panic!("params: {e}"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("server key: {e}"));
        let cert = params
            .signed_by(&key, &issuer)
            .unwrap_or_else(|e| panic!("server cert: {e}"));
        for (name, text) in [
            ("ca.pem", ca_pem),
            ("other-ca.pem", other_pem),
            ("server.pem", cert.pem()),
            ("server.key", key.serialize_pem()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        TestPki { dir }
    }

    /// The CA that signed the server certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// Its key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
