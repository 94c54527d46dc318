//! TLS towards clients: a listener's [`ServerTls`] (built once per config change, shared by every
//! core), each core's [`Acceptor`] (its own session cache), and the handshake of an accepted
//! connection.
//!
//! The handshake is driven here rather than by monoio-rustls, so that bytes read before it (a
//! PROXY protocol header's trailing bytes) can be fed in, and so that the session can be asked
//! what the client presented (SNI, ALPN, its certificate) before it is wrapped into a stream.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig, ServerConnection};

use crate::certs::{CertSpec, CertStore};
use crate::config::{ca_roots, provider};
use crate::error::{Error, Result};
use crate::identity::{peer_identity, PeerIdentity};

/// A TLS server stream over TCP, after its handshake.
pub type ServerStream = monoio_rustls::ServerTlsStream<TcpStream>;

/// What a listener asks of TLS (its config's `tls` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Certificates; the first is the default.
    pub certificates: Vec<CertSpec>,
    /// Accept TLS 1.3 only (else 1.2 and 1.3).
    pub tls13_only: bool,
    /// ALPN protocols offered, in order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// Issue stateless session tickets.
    pub session_tickets: bool,
    /// Sessions kept per core for resumption by id (0: none).
    pub session_cache: usize,
    /// Limit on the handshake.
    pub handshake_timeout: Duration,
    /// CA bundle client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: let clients without a certificate in.
    pub client_cert_optional: bool,
}

/// A listener's TLS: its certificates (reloaded from disk when they change) and the rustls
/// config every core's [`Acceptor`] is made from.
#[derive(Debug)]
pub struct ServerTls {
    base: Arc<ServerConfig>,
    certs: Arc<CertStore>,
    session_cache: usize,
    handshake_timeout: Duration,
}

impl ServerTls {
    /// Loads the certificates and the client CA now (a bad file is an error naming it) and
    /// registers the certificates with the process's file watcher.
    pub fn new(listener: &str, opts: &ServerOptions) -> Result<ServerTls> {
        let provider = provider();
        let certs = Arc::new(CertStore::new(
            listener,
            opts.certificates.clone(),
            provider.clone(),
        )?);
        let versions: &[&'static rustls::SupportedProtocolVersion] = if opts.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ServerConfig::builder_with_provider(server_provider())
            .with_protocol_versions(versions)
            .map_err(Error::Config)?;
        let builder = match &opts.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = Arc::new(ca_roots(ca)?);
                let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let b = if opts.client_cert_optional {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                let verifier = b.build().map_err(|e| Error::Pem {
                    path: ca.clone(),
                    message: format!("unusable client CA: {e}"),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        config.alpn_protocols = opts.alpn.clone();
        // Our order, not the client's: OpenSSL asks for AES-256-GCM-SHA384 first, whose key
        // schedule runs on SHA-384, which no x86 CPU accelerates (SHA-256 has SHA-NI); it was
        // 13% of a resumed handshake's CPU in a profile.
        config.ignore_client_order = true;
        if opts.session_tickets {
            config.ticketer = ticketer()?;
            // One ticket per handshake, not rustls's two: a client resumes with one (each
            // handshake, a resumption too, brings a fresh one), and each costs an encryption and
            // a record.
            config.send_tls13_tickets = 1;
        }
        // Replaced per core (`Acceptor`); none in the shared base.
        config.session_storage = Arc::new(NoServerSessionStorage {});
        crate::watch::register(&certs);
        Ok(ServerTls {
            base: Arc::new(config),
            certs,
            session_cache: opts.session_cache,
            handshake_timeout: opts.handshake_timeout,
        })
    }

    /// A core's acceptor: the shared config with a session cache of the core's own (touched by
    /// that core only, so its lock is never contended).
    pub fn acceptor(&self) -> Acceptor {
        let mut config = (*self.base).clone();
        if self.session_cache > 0 {
            config.session_storage = ServerSessionMemoryCache::new(self.session_cache);
        }
        Acceptor {
            config: Arc::new(config),
            timeout: self.handshake_timeout,
        }
    }

    /// The certificate store (for a reload by hand, and tests).
    pub fn certs(&self) -> &Arc<CertStore> {
        &self.certs
    }
}

/// aws-lc-rs with the suites on SHA-256 first (AES-128-GCM, then ChaCha20-Poly1305), those on
/// SHA-384 last: every suite stays available, and a client that offers both gets the cheaper one.
/// TLS 1.3 suites key HMAC once per secret ([`crate::hkdf`]); random bytes and X25519 keys come
/// from a per-thread pool ([`crate::random`]).
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let p = crate::hkdf::with_keyed_hkdf(rustls::crypto::aws_lc_rs::default_provider());
            let mut p = crate::random::with_pooled_random(p);
            p.cipher_suites.sort_by_key(|s| {
                use rustls::CipherSuite as C;
                matches!(
                    s.suite(),
                    C::TLS13_AES_256_GCM_SHA384
                        | C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                        | C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                )
            });
            Arc::new(p)
        })
        .clone()
}

/// The process-wide ticket encrypter: tickets made on one core resume on any other (the kernel
/// spreads a client's connections over the cores), and across config generations.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>> {
    static TICKETER: OnceLock<Arc<dyn rustls::server::ProducesTickets>> = OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Ok(t.clone());
    }
    let t: Arc<dyn rustls::server::ProducesTickets> =
        Arc::new(crate::ticket::ticketer().map_err(Error::Config)?);
    Ok(TICKETER.get_or_init(|| t).clone())
}

/// One core's TLS acceptor of a listener.
#[derive(Debug, Clone)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    timeout: Duration,
}

/// What a handshake settled.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    /// The SNI name the client sent.
    pub sni: Option<String>,
    /// The protocol chosen by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// Whether the session was resumed (no certificate exchanged).
    pub resumed: bool,
    /// The client certificate, verified (mutual TLS).
    pub peer: Option<PeerIdentity>,
}

/// Why a handshake failed: a short reason (a metric label) and the details (a log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    /// One of `timeout`, `closed`, `io`, `protocol`, `client_certificate`, `incompatible`,
    /// `alert`, `other`.
    pub reason: &'static str,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl HandshakeError {
    fn io(e: std::io::Error) -> HandshakeError {
        if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return HandshakeError::tls(r.clone());
        }
        HandshakeError {
            reason: "io",
            message: e.to_string(),
        }
    }

    fn tls(e: rustls::Error) -> HandshakeError {
        use rustls::Error as E;
        let reason = match &e {
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::DecryptError
            | E::PeerMisbehaved(_) => "protocol",
            E::NoCertificatesPresented | E::InvalidCertificate(_) => "client_certificate",
            E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
            E::AlertReceived(_) => "alert",
            _ => "other",
        };
        HandshakeError {
            reason,
            message: e.to_string(),
        }
    }
}

impl Acceptor {
    /// Runs the server handshake on `tcp` within the handshake timeout. `early`: bytes already
    /// read from the connection (they are the start of the ClientHello).
    pub async fn accept<IO: AsyncReadRent + AsyncWriteRent>(
        &self,
        mut tcp: IO,
        early: &[u8],
    ) -> std::result::Result<(monoio_rustls::ServerTlsStream<IO>, SessionInfo), HandshakeError>
    {
        let mut conn = ServerConnection::new(self.config.clone()).map_err(HandshakeError::tls)?;
        match monoio::time::timeout(self.timeout, handshake(&mut conn, &mut tcp, early)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(HandshakeError {
                    reason: "timeout",
                    message: format!("no handshake within {:?}", self.timeout),
                })
            }
        }
        let info = SessionInfo {
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: match conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "TLS",
            },
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            peer: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| match peer_identity(leaf.as_ref()) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        // rustls verified it, so this is only our reading of its names.
                        tracing::debug!(error = %e, "client certificate names unreadable");
                        None
                    }
                }),
        };
        Ok((monoio_rustls::ServerTlsStream::new(tcp, conn), info))
    }
}

/// Feeds `data` to the session; every byte is taken (what follows the handshake in the same
/// read, the client's first request, waits in the session's plaintext buffer).
fn feed(conn: &mut ServerConnection, mut data: &[u8]) -> std::result::Result<(), HandshakeError> {
    while !data.is_empty() {
        conn.read_tls(&mut data).map_err(HandshakeError::io)?;
        conn.process_new_packets().map_err(HandshakeError::tls)?;
    }
    Ok(())
}

/// Writes what the session has to send.
async fn flush(
    conn: &mut ServerConnection,
    tcp: &mut impl AsyncWriteRent,
) -> std::result::Result<(), HandshakeError> {
    let mut out = Vec::with_capacity(4096);
    while conn.wants_write() {
        conn.write_tls(&mut out).map_err(HandshakeError::io)?;
    }
    if !out.is_empty() {
        let (r, _) = tcp.write_all(out).await;
        r.map_err(HandshakeError::io)?;
    }
    Ok(())
}

async fn handshake<IO: AsyncReadRent + AsyncWriteRent>(
    conn: &mut ServerConnection,
    tcp: &mut IO,
    early: &[u8],
) -> std::result::Result<(), HandshakeError> {
    // Not zeroed: a read fills it from the start and sets its length.
    let mut buf = Vec::with_capacity(8192);
    let mut fed = feed(conn, early);
    loop {
        if let Err(e) = fed {
            // rustls queued an alert that tells the client why; send it if we can.
            let _ = flush(conn, tcp).await;
            return Err(e);
        }
        if !conn.is_handshaking() {
            // TLS 1.3: what rustls queued once the handshake was over (the session ticket) is
            // left for the stream's first write and leaves in the same send as the response
            // (see dataplane/vendor/README.md). TLS 1.2's last flight (ChangeCipherSpec,
            // Finished) goes now: the client waits for it before it sends a request.
            if conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
                flush(conn, tcp).await?;
            }
            return Ok(());
        }
        flush(conn, tcp).await?;
        let (r, b) = tcp.read(buf).await;
        buf = b;
        match r {
            Ok(0) => {
                return Err(HandshakeError {
                    reason: "closed",
                    message: "the client closed the connection during the handshake".into(),
                })
            }
            Ok(n) => fed = feed(conn, &buf[..n]),
            Err(e) => return Err(HandshakeError::io(e)),
        }
    }
}
