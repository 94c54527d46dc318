//! What a certificate says about its holder: the subject, its common name, its alternative names
//! and its SHA-256 fingerprint. Read once per handshake from a client certificate that rustls
//! already verified, and once per load from a server certificate (its DNS names become the SNI
//! names it is served for).

use x509_parser::extensions::GeneralName;

/// The identity of a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject distinguished name, as `CN=client,O=Example` (RFC 4514 order, as written).
    pub subject: String,
    /// The subject's first common name.
    pub common_name: Option<String>,
    /// Subject alternative names: DNS names, URIs (SPIFFE ids), e-mail addresses, IP addresses.
    pub sans: Vec<String>,
    /// SHA-256 of the certificate's DER, lower-case hex.
    pub fingerprint_sha256: String,
}

/// Reads the identity of a certificate (DER).
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                    sans.push((*s).to_owned())
                }
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_of(b) {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut fingerprint_sha256 = String::with_capacity(64);
    for b in digest.as_ref() {
        fingerprint_sha256.push_str(&format!("{b:02x}"));
    }
    Ok(PeerIdentity {
        subject: rfc4514(subject),
        common_name,
        sans,
        fingerprint_sha256,
    })
}

/// A distinguished name as RFC 4514 text, in the order written (`CN=alice,O=Example`), with
/// the special characters of values escaped. Attributes without a known short name are written
/// as their dotted OID.
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for rdn in name.iter() {
        if !out.is_empty() {
            out.push(',');
        }
        for (i, attr) in rdn.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(short) => out.push_str(short),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            let value = attr.as_str().unwrap_or("?");
            let last = value.chars().count();
            for (j, c) in value.chars().enumerate() {
                let edge = (j == 0 && (c == ' ' || c == '#')) || (j + 1 == last && c == ' ');
                if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

/// The DNS names of a certificate (DER): its DNS alternative names, or its common name when it
/// has none. An error when it has neither.
pub fn dns_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            if let GeneralName::DNSName(s) = n {
                names.push(s.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            if weir_sni_name(cn) {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

fn weir_sni_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty() && (l == "*" || l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
}

fn ip_of(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}
