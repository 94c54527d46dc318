//! Client configs: which roots are trusted, the client certificate, the server name, ALPN.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use monoio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};
use crate::stream::MaybeTls;

/// What a cluster asks of TLS towards its endpoints (the config's `tls` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientOptions {
    /// The server name sent (SNI) and verified, instead of each endpoint's host.
    pub sni: Option<String>,
    /// A PEM bundle of CA certificates that *replaces* the default roots: a private CA is
    /// trusted for this cluster, and the public ones are not.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server (mutual TLS), leaf first.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. For tests only: it is logged as a warning each time a
    /// config with it is built.
    pub insecure_skip_verify: bool,
}

/// A built client config and the server-name rule of one cluster. Cheap to clone (an `Arc`);
/// built once per config change of the cluster, shared by every core.
#[derive(Clone)]
pub struct Connector {
    connector: monoio_rustls::TlsConnector,
    config: Arc<ClientConfig>,
    sni: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("sni", &self.sni)
            .field("alpn", &self.config.alpn_protocols)
            .finish()
    }
}

impl Connector {
    /// Builds the rustls client config of `opts`: reads the CA bundle and the client
    /// certificate and key now, so a bad file fails the config, not a request.
    pub fn new(opts: &ClientOptions) -> Result<Connector> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Config)?;
        let builder = if opts.insecure_skip_verify {
            tracing::warn!(
                sni = ?opts.sni,
                "TLS towards an upstream with insecure_skip_verify: ANY server certificate is \
                 accepted; never use this outside tests"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(
                    provider.signature_verification_algorithms,
                )))
        } else {
            let roots = match &opts.ca_file {
                Some(path) => Arc::new(ca_roots(path)?),
                None => default_roots()?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&opts.client_cert, &opts.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(Error::Config)?,
            _ => return Err(Error::ClientAuthIncomplete),
        };
        // HTTP/1.1 is what the proxy speaks upstream unless the cluster says h2
        // ([`Connector::for_h2`]); a server that would pick h2 must not.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sni = opts.sni.as_deref().map(server_name).transpose()?;
        let config = Arc::new(config);
        Ok(Connector {
            connector: monoio_rustls::TlsConnector::from(config.clone()),
            config,
            sni,
        })
    }

    /// The same config offering only `h2` by ALPN (a cluster with `protocol: h2`).
    pub fn for_h2(&self) -> Connector {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        Connector {
            connector: monoio_rustls::TlsConnector::from(config.clone()),
            config,
            sni: self.sni.clone(),
        }
    }

    /// The name a connection to `host` is made under: the `sni` override, or `host` itself
    /// (a DNS name is sent as SNI and checked against the certificate; an IP address is only
    /// checked, as TLS sends no SNI for addresses).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>> {
        match &self.sni {
            Some(name) => Ok(name.clone()),
            None => server_name(host),
        }
    }

    /// The rustls config (ALPN, roots, client auth).
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Runs the TLS handshake over `tcp` towards `host` (see [`Connector::server_name`]).
    /// The caller bounds it in time, together with the TCP connect.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<MaybeTls> {
        let name = self.server_name(host)?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(Error::from_handshake)?;
        Ok(MaybeTls::Tls(Box::new(tls)))
    }
}

/// rustls on aws-lc-rs, whatever provider another crate may have installed process-wide (its TLS
/// 1.3 suites with HKDF keyed once per secret, [`crate::hkdf`]; random bytes and X25519 keys from
/// a per-thread pool, [`crate::random`]).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let p = crate::hkdf::with_keyed_hkdf(aws_lc_rs::default_provider());
            Arc::new(crate::random::with_pooled_random(p))
        })
        .clone()
}

/// `host` (a DNS name or an IP address, IPv6 with or without brackets) as a TLS server name.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| Error::ServerName(host.to_string()))
}

/// The default trust: the system's store (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`)
/// plus the Mozilla roots bundled at build time (so a minimal container without a CA package
/// still reaches public providers). Loaded once per process: reading a few hundred system
/// certificates is not something every reload should pay for.
pub fn default_roots() -> Result<Arc<RootCertStore>> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(r) = ROOTS.get() {
        return Ok(r.clone());
    }
    let mut store = RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "reading the system's CA certificates");
    }
    let (added, ignored) = store.add_parsable_certificates(native.certs);
    tracing::debug!(
        system = added,
        ignored,
        total = store.len(),
        "TLS roots loaded"
    );
    if store.is_empty() {
        return Err(Error::NoRoots);
    }
    Ok(ROOTS.get_or_init(|| Arc::new(store)).clone())
}

/// The roots of a `ca_file`: every certificate in it; none, or one rustls cannot use, is an
/// error.
pub(crate) fn ca_roots(path: &Path) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path)? {
        store.add(cert).map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` section of a PEM file; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: path.to_path_buf(),
            message: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: path.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| Error::Pem {
        path: path.to_path_buf(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY in the file".into(),
            other => format!("bad PEM: {other}"),
        },
    })
}

/// The verifier of `insecure_skip_verify`: any certificate for any name is taken. Handshake
/// signatures are still checked, so the peer at least holds the key of what it presented.
#[derive(Debug)]
struct AcceptAnything(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
