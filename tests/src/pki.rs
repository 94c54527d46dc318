//! A throwaway PKI for the TLS tests: a CA, a server certificate it signed, an unrelated second
//! CA, and on demand more leaves of either CA (server certificates for other names, RSA or
//! ECDSA; client certificates), written as PEM files into a temp dir (removed on drop).

use std::path::PathBuf;
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::util::TempDir;

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "upstream.test"];

/// Which key a leaf gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 (made by rcgen).
    Ecdsa,
    /// RSA 2048 (made by `openssl genpkey`: *ring* does not generate RSA keys).
    Rsa,
}

/// Test certificates made with `rcgen` (ECDSA P-256 unless asked), valid from now for the
/// default span.
pub struct TestPki {
    dir: TempDir,
    ca: Issuer<'static, KeyPair>,
    other: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").field("dir", &self.dir).finish()
    }
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p =
        CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("CA params: {e}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
    let cert = p
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("CA cert: {e}"));
    (cert.pem(), Issuer::new(p, key))
}

impl TestPki {
    /// Makes the CA, the server certificate (for [`SERVER_NAMES`]) and the other CA.
    pub fn new() -> TestPki {
        let dir = TempDir::new("pki");
        let (ca_pem, issuer) = ca("weir tests CA");
        let (other_pem, other) = ca("some other CA");
        for (name, text) in [("ca.pem", ca_pem), ("other-ca.pem", other_pem)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        let pki = TestPki {
            dir,
            ca: issuer,
            other,
        };
        pki.server("server", &SERVER_NAMES, KeyKind::Ecdsa);
        pki
    }

    fn leaf(
        &self,
        stem: &str,
        cn: &str,
        sans: &[&str],
        kind: KeyKind,
        client: Option<&str>,
        by_other: bool,
    ) {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap_or_else(|e| panic!("params: {e}"));
        if let Some(uri) = client {
            let uri = uri.try_into().unwrap_or_else(|e| panic!("URI: {e}"));
            params.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Weir Tests");
        if client.is_some() {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = match kind {
            KeyKind::Ecdsa => KeyPair::generate().unwrap_or_else(|e| panic!("key: {e}")),
            KeyKind::Rsa => {
                let out = Command::new("openssl")
                    .args([
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                    ])
                    .output()
                    .unwrap_or_else(|e| panic!("openssl genpkey: {e}"));
                assert!(out.status.success(), "openssl genpkey failed");
                let pem = String::from_utf8_lossy(&out.stdout).into_owned();
                KeyPair::from_pem(&pem).unwrap_or_else(|e| panic!("RSA key: {e}"))
            }
        };
        let issuer = if by_other { &self.other } else { &self.ca };
        let cert = params
            .signed_by(&key, issuer)
            .unwrap_or_else(|e| panic!("cert: {e}"));
        for (name, text) in [
            (format!("{stem}.pem"), cert.pem()),
            (format!("{stem}.key"), key.serialize_pem()),
        ] {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }

    /// Issues a server certificate for `names` (the first is also its CN) from the test CA, as
    /// `STEM.pem` and `STEM.key` (replacing them if they exist: a rotation).
    pub fn server(&self, stem: &str, names: &[&str], kind: KeyKind) -> (PathBuf, PathBuf) {
        self.leaf(stem, names[0], names, kind, None, false);
        (
            self.file(&format!("{stem}.pem")),
            self.file(&format!("{stem}.key")),
        )
    }

    /// Issues a client certificate with common name `cn` (and a SPIFFE-like URI) from the test
    /// CA, or from the other CA with `by_other`.
    pub fn client(&self, stem: &str, cn: &str, by_other: bool) -> (PathBuf, PathBuf) {
        let uri = format!("spiffe://weir.test/{cn}");
        self.leaf(stem, cn, &[cn], KeyKind::Ecdsa, Some(&uri), by_other);
        (
            self.file(&format!("{stem}.pem")),
            self.file(&format!("{stem}.key")),
        )
    }

    /// A file of the PKI's directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA that signed the server certificate.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// Its key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
