//! Handshakes against an in-process rustls server on loopback, on both monoio drivers: the
//! trusted CA, a wrong CA, the SNI override, `insecure_skip_verify`, mutual TLS, the split halves,
//! and a peer that closes without `close_notify`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};
use monoio::BufResult;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::*;

// === test PKI ===

/// A CA, a server certificate it signed (`localhost`, `127.0.0.1`), a client certificate it
/// signed, and a second, unrelated CA; all as PEM files in a temp dir.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let dir = std::env::temp_dir().join(format!(
            "weir-tls-{tag}-{}-{}",
            std::process::id(),
            fastrand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let (ca_pem, issuer) = ca("weir test CA");
        let (other_pem, _) = ca("another CA");
        let leaf = |sans: Vec<String>| {
            let p = CertificateParams::new(sans).unwrap();
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client, client_key) = leaf(vec!["client.test".into()]);
        for (name, text) in [
            ("ca.pem", ca_pem),
            ("other-ca.pem", other_pem),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn options(&self, ca: &str) -> ClientOptions {
        ClientOptions {
            ca_file: Some(self.path(ca)),
            ..Default::default()
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

// === test server ===

/// Serves the test certificate and remembers the SNI of each handshake.
#[derive(Debug)]
struct Recorder {
    key: Arc<CertifiedKey>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl ResolvesServerCert for Recorder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.seen
            .lock()
            .unwrap()
            .push(hello.server_name().map(str::to_owned));
        Some(self.key.clone())
    }
}

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

/// A TCP stream that counts its writes.
struct Counted {
    io: TcpStream,
    writes: Rc<Cell<usize>>,
}

impl AsyncReadRent for Counted {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.io.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.io.readv(buf)
    }
}

impl AsyncWriteRent for Counted {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.writes.set(self.writes.get() + 1);
        self.io.write(buf)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.writes.set(self.writes.get() + 1);
        self.io.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> {
        self.io.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = std::io::Result<()>> {
        self.io.shutdown()
    }
}

/// What the server does after its handshake.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Echoes every read until the client closes, then sends close_notify.
    Echo,
    /// Writes `hello` and closes the TCP socket without close_notify.
    HelloThenDrop,
}

/// A TLS server on 127.0.0.1:0, spawned on the current runtime. `client_ca`: require client
/// certificates issued by it.
fn server(pki: &Pki, client_ca: Option<&Path>, behaviour: Behaviour) -> Server {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = load_certs(&pki.path("server.pem")).unwrap();
    let key = provider
        .key_provider
        .load_private_key(load_key(&pki.path("server.key")).unwrap())
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca).unwrap() {
                roots.add(c).unwrap();
            }
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Recorder {
        key: Arc::new(CertifiedKey::new(certs, key)),
        seen: seen.clone(),
    }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = monoio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    monoio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            monoio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                match behaviour {
                    Behaviour::Echo => loop {
                        let (r, buf) = tls.read(Vec::with_capacity(1024)).await;
                        if !matches!(r, Ok(n) if n > 0) {
                            break;
                        }
                        if tls.write_all(buf).await.0.is_err() {
                            break;
                        }
                    },
                    Behaviour::HelloThenDrop => {
                        let _ = tls.write_all(b"hello".to_vec()).await;
                        // Dropping the stream closes TCP; no close_notify was sent.
                    }
                }
            });
        }
    });
    Server { addr, seen }
}

/// Runs `f` on the epoll driver, then on io_uring where the kernel allows it.
fn both<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(f());
    match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut rt) => rt.block_on(f()),
        Err(e) => eprintln!("io_uring unavailable here ({e}); epoll only"),
    }
}

async fn dial(c: &Connector, addr: SocketAddr, host: &str) -> Result<MaybeTls> {
    let tcp = TcpStream::connect_addr(addr).await.unwrap();
    c.connect(host, tcp).await
}

/// Everything the peer sends until its clean end; panics on a read error.
async fn read_to_end(s: &mut impl AsyncReadRent) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let (r, buf) = s.read(Vec::with_capacity(64)).await;
        match r.unwrap() {
            0 => return got,
            _ => got.extend_from_slice(&buf),
        }
    }
}

async fn echo(s: &mut MaybeTls, text: &str) -> String {
    let (r, _) = s.write_all(text.as_bytes().to_vec()).await;
    r.unwrap();
    let (r, buf) = s.read(Vec::with_capacity(1024)).await;
    r.unwrap();
    String::from_utf8(buf).unwrap()
}

// === tests ===

#[test]
fn host_and_server_names() {
    assert_eq!(host_of("api.openai.com:443"), "api.openai.com");
    assert_eq!(host_of("[::1]:8443"), "::1");
    assert_eq!(host_of("10.0.0.1:80"), "10.0.0.1");
    assert!(matches!(
        server_name("api.openai.com").unwrap(),
        rustls::pki_types::ServerName::DnsName(_)
    ));
    assert!(matches!(
        server_name("[::1]").unwrap(),
        rustls::pki_types::ServerName::IpAddress(_)
    ));
    assert!(server_name("bad name!").is_err());
}

#[test]
fn bad_files_fail_the_config() {
    let pki = Pki::new("files");
    let missing = pki.path("nope.pem");
    let e = Connector::new(&ClientOptions {
        ca_file: Some(missing.clone()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::Read { .. }), "{e}");
    // A key is not a certificate.
    let e = Connector::new(&pki.options("server.key")).unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    // A certificate is not a key.
    let e = Connector::new(&ClientOptions {
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("client.pem")),
        ..pki.options("ca.pem")
    })
    .unwrap_err();
    assert!(e.to_string().contains("no PRIVATE KEY"), "{e}");
    // Half of a client identity.
    let e = Connector::new(&ClientOptions {
        client_cert: Some(pki.path("client.pem")),
        ..pki.options("ca.pem")
    })
    .unwrap_err();
    assert!(matches!(e, Error::ClientAuthIncomplete), "{e}");
    // A key that is not the certificate's.
    let e = Connector::new(&ClientOptions {
        client_cert: Some(pki.path("client.pem")),
        client_key: Some(pki.path("server.key")),
        ..pki.options("ca.pem")
    })
    .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(Connector::new(&ClientOptions {
        sni: Some("bad name!".into()),
        ..pki.options("ca.pem")
    })
    .is_err());
}

#[test]
fn default_roots_are_loaded() {
    let roots = default_roots().unwrap();
    assert!(roots.len() >= webpki_roots::TLS_SERVER_ROOTS.len());
    // Built once per process.
    assert!(Arc::ptr_eq(&roots, &default_roots().unwrap()));
    Connector::new(&ClientOptions::default()).unwrap();
}

#[test]
fn trusted_ca_works_with_alpn_and_sni() {
    let pki = Pki::new("ok");
    both(|| async {
        let srv = server(&pki, None, Behaviour::Echo);
        let c = Connector::new(&pki.options("ca.pem")).unwrap();
        // By name: SNI sent and checked.
        let mut s = dial(&c, srv.addr, "localhost").await.unwrap();
        assert!(s.is_tls());
        assert_eq!(s.alpn_protocol().as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(echo(&mut s, "ping").await, "ping");
        assert_eq!(echo(&mut s, "again").await, "again");
        // By address: checked against the IP SAN, no SNI (TLS has none for addresses).
        let mut s = dial(&c, srv.addr, "127.0.0.1").await.unwrap();
        assert_eq!(echo(&mut s, "ip").await, "ip");
        assert_eq!(
            *srv.seen.lock().unwrap(),
            vec![Some("localhost".to_string()), None]
        );
    });
}

#[test]
fn sni_override_is_sent_and_verified() {
    let pki = Pki::new("sni");
    both(|| async {
        let srv = server(&pki, None, Behaviour::Echo);
        let c = Connector::new(&ClientOptions {
            sni: Some("localhost".into()),
            ..pki.options("ca.pem")
        })
        .unwrap();
        let mut s = dial(&c, srv.addr, "127.0.0.1").await.unwrap();
        assert_eq!(echo(&mut s, "x").await, "x");
        assert_eq!(
            srv.seen
                .lock()
                .unwrap()
                .last()
                .cloned()
                .flatten()
                .as_deref(),
            Some("localhost")
        );
        // A name the certificate does not carry is refused.
        let c = Connector::new(&ClientOptions {
            sni: Some("other.test".into()),
            ..pki.options("ca.pem")
        })
        .unwrap();
        let e = dial(&c, srv.addr, "127.0.0.1").await.unwrap_err();
        assert!(e.is_certificate(), "{e}");
        assert!(
            e.to_string().contains("certificate verification failed"),
            "{e}"
        );
    });
}

#[test]
fn wrong_ca_is_refused() {
    let pki = Pki::new("wrong");
    both(|| async {
        let srv = server(&pki, None, Behaviour::Echo);
        let c = Connector::new(&pki.options("other-ca.pem")).unwrap();
        let e = dial(&c, srv.addr, "localhost").await.unwrap_err();
        assert!(e.is_certificate(), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("certificate verification failed"),
            "{text}"
        );
        assert!(
            text.contains("UnknownIssuer") || text.contains("issuer"),
            "{text}"
        );
        // The public roots do not know the test CA either.
        let c = Connector::new(&ClientOptions::default()).unwrap();
        assert!(dial(&c, srv.addr, "localhost")
            .await
            .unwrap_err()
            .is_certificate());
    });
}

#[test]
fn insecure_skip_verify_accepts_anything() {
    let pki = Pki::new("insecure");
    both(|| async {
        let srv = server(&pki, None, Behaviour::Echo);
        let c = Connector::new(&ClientOptions {
            insecure_skip_verify: true,
            sni: Some("not-in-the-cert.test".into()),
            ..Default::default()
        })
        .unwrap();
        let mut s = dial(&c, srv.addr, "127.0.0.1").await.unwrap();
        assert_eq!(echo(&mut s, "trust me").await, "trust me");
    });
}

#[test]
fn mutual_tls() {
    let pki = Pki::new("mtls");
    both(|| async {
        let ca = pki.path("ca.pem");
        let srv = server(&pki, Some(&ca), Behaviour::Echo);
        let with_cert = Connector::new(&ClientOptions {
            client_cert: Some(pki.path("client.pem")),
            client_key: Some(pki.path("client.key")),
            ..pki.options("ca.pem")
        })
        .unwrap();
        let mut s = dial(&with_cert, srv.addr, "localhost").await.unwrap();
        assert_eq!(echo(&mut s, "mtls").await, "mtls");
        // Without a certificate the server refuses: TLS 1.3 reports it on the first read.
        let without = Connector::new(&pki.options("ca.pem")).unwrap();
        let refused = match dial(&without, srv.addr, "localhost").await {
            Err(_) => true,
            Ok(mut s) => {
                let _ = s.write_all(b"x".to_vec()).await;
                let (r, _) = s.read(Vec::with_capacity(16)).await;
                !matches!(r, Ok(n) if n > 0)
            }
        };
        assert!(refused);
    });
}

#[test]
fn split_halves_work_at_once() {
    let pki = Pki::new("split");
    both(|| async {
        let srv = server(&pki, None, Behaviour::Echo);
        let c = Connector::new(&pki.options("ca.pem")).unwrap();
        let s = dial(&c, srv.addr, "localhost").await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let reader = async {
            let mut got = Vec::new();
            while got.len() < 3000 {
                let (r, buf) = rd.read(Vec::with_capacity(4096)).await;
                assert!(r.unwrap() > 0);
                got.extend_from_slice(&buf);
            }
            got
        };
        let writer = async {
            for i in 0..3u8 {
                let (r, _) = wr.write_all(vec![b'a' + i; 1000]).await;
                r.unwrap();
            }
        };
        let (got, ()) = monoio::join!(reader, writer);
        assert_eq!(&got[..1000], &[b'a'; 1000][..]);
        assert_eq!(&got[2000..], &[b'c'; 1000][..]);
        wr.shutdown().await.unwrap();
    });
}

/// A listener's TLS on the PKI's server certificate: ALPN http/1.1, tickets on.
fn listener_tls(pki: &Pki) -> ServerTls {
    ServerTls::new(
        "test",
        &ServerOptions {
            certificates: vec![CertSpec {
                cert: pki.path("server.pem"),
                key: pki.path("server.key"),
                names: Vec::new(),
            }],
            tls13_only: false,
            alpn: vec![b"http/1.1".to_vec()],
            session_tickets: true,
            session_cache: 0,
            handshake_timeout: std::time::Duration::from_secs(5),
            client_ca: None,
            client_cert_optional: false,
        },
    )
    .unwrap()
}

/// Weir's own listener TLS (`ServerTls` → `Acceptor`, the path a listener takes) on
/// 127.0.0.1:0, echoing; its writes to the sockets are counted. `closing`: the first echo is the
/// connection's last write (its close signal set, as the proxy sets it for a `Connection: close`
/// response), then the connection is shut down.
fn weir_server(pki: &Pki, closing: bool) -> (SocketAddr, Rc<Cell<usize>>) {
    let tls = listener_tls(pki);
    let acceptor = tls.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let writes = Rc::new(Cell::new(0));
    let counter = writes.clone();
    monoio::spawn(async move {
        let _keep = tls;
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let io = Counted {
                io: tcp,
                writes: counter.clone(),
            };
            monoio::spawn(async move {
                let Ok((mut s, _)) = acceptor.accept(io, &[]).await else {
                    return;
                };
                if closing {
                    let (r, buf) = s.read(Vec::with_capacity(1024)).await;
                    if matches!(r, Ok(n) if n > 0) {
                        s.close_signal().set(true);
                        let _ = s.write_all(buf).await;
                        let _ = s.shutdown().await;
                    }
                    return;
                }
                loop {
                    let (r, buf) = s.read(Vec::with_capacity(1024)).await;
                    if !matches!(r, Ok(n) if n > 0) || s.write_all(buf).await.0.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, writes)
}

#[test]
fn tls13_session_ticket_leaves_with_the_first_write() {
    // The server's flight is one send; the session ticket rustls queues once the handshake is
    // over waits for the first response and leaves in its send: two sends in all, not three.
    let pki = Pki::new("coalesce");
    both(|| async {
        let (addr, writes) = weir_server(&pki, false);
        let c = Connector::new(&pki.options("ca.pem")).unwrap();
        let mut s = dial(&c, addr, "localhost").await.unwrap();
        assert_eq!(echo(&mut s, "ping").await, "ping");
        assert_eq!(writes.get(), 2);
        assert_eq!(echo(&mut s, "again").await, "again");
        assert_eq!(writes.get(), 3);
    });
}

/// A plain monoio-rustls client of these protocol versions trusting the PKI's CA (no Weir
/// wrapper: its reads tell a clean close_notify from a bare FIN).
fn raw_connector(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> monoio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&pki.path("ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::config::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    monoio_rustls::TlsConnector::from(Arc::new(config))
}

#[test]
fn close_notify_leaves_with_the_last_write() {
    // A connection's last response (its close signal set) carries the session ticket before it
    // and the close_notify after it in one send: two sends in all, and the client reads a clean
    // end (a close without close_notify would be an error to a TLS client).
    let pki = Pki::new("closing");
    both(|| async {
        let (addr, writes) = weir_server(&pki, true);
        let connector = raw_connector(&pki, rustls::DEFAULT_VERSIONS);
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let mut s = connector
            .connect(server_name("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (r, _) = s.write_all(b"last".to_vec()).await;
        r.unwrap();
        // An error here: a bare FIN where a close_notify was due.
        let got = read_to_end(&mut s).await;
        assert_eq!(got, b"last");
        assert_eq!(writes.get(), 2);
    });
}

#[test]
fn a_last_write_waits_for_the_fin() {
    // Through the listener's own halves (`split_plain`, `split_tls`): `last_write_next` corks the
    // socket, so the last bytes (with TLS, the response and its close_notify) are held for the
    // FIN that `shutdown` sends; the client reads them and a clean end.
    let pki = Pki::new("cork");
    both(|| async {
        let opts = pki.options("ca.pem");
        for tls in [false, true] {
            let server = listener_tls(&pki);
            let acceptor = server.acceptor();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let served = monoio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let (mut rd, mut wr) = if tls {
                    split_tls(acceptor.accept(tcp, &[]).await.unwrap().0)
                } else {
                    split_plain(tcp)
                };
                let (r, buf) = rd.read(Vec::with_capacity(64)).await;
                assert!(r.unwrap() > 0);
                wr.last_write_next();
                let corked = match &wr {
                    ClientWrite::Plain(s) => socket2::SockRef::from(s).cork().unwrap(),
                    ClientWrite::Tls(s, _) => socket2::SockRef::from(s).cork().unwrap(),
                };
                assert!(corked, "the socket is corked before its last write");
                wr.write_all(buf).await.0.unwrap();
                wr.shutdown().await.unwrap();
            });
            let tcp = TcpStream::connect_addr(addr).await.unwrap();
            let mut s = if tls {
                Connector::new(&opts)
                    .unwrap()
                    .connect("localhost", tcp)
                    .await
                    .unwrap()
            } else {
                MaybeTls::from(tcp)
            };
            s.write_all(b"bye".to_vec()).await.0.unwrap();
            let got = read_to_end(&mut s).await;
            assert_eq!(got, b"bye", "tls: {tls}");
            served.await;
        }
    });
}

#[test]
fn tls12_last_flight_is_written_at_once() {
    // TLS 1.2's client waits for the server's Finished before it sends data: the handshake must
    // not leave it queued for the first write.
    let pki = Pki::new("tls12");
    both(|| async {
        let (addr, writes) = weir_server(&pki, false);
        let connector = raw_connector(&pki, &[&rustls::version::TLS12]);
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let name = server_name("localhost").unwrap();
        let mut s = connector.connect(name, tcp).await.unwrap();
        let (r, _) = s.write_all(b"ping".to_vec()).await;
        r.unwrap();
        let (r, buf) = s.read(Vec::with_capacity(64)).await;
        r.unwrap();
        assert_eq!(buf, b"ping");
        // ServerHello..ServerHelloDone, then the ticket, ChangeCipherSpec and Finished, then the
        // echo.
        assert_eq!(writes.get(), 3);
        let (_, session) = s.into_parts();
        assert_eq!(
            session.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
    });
}

#[test]
fn close_without_notify_is_end_of_stream() {
    let pki = Pki::new("eof");
    both(|| async {
        let srv = server(&pki, None, Behaviour::HelloThenDrop);
        let c = Connector::new(&pki.options("ca.pem")).unwrap();
        let mut s = dial(&c, srv.addr, "localhost").await.unwrap();
        let got = read_to_end(&mut s).await;
        assert_eq!(got, b"hello");
    });
}

#[test]
fn plain_streams_pass_through() {
    both(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        monoio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (_, buf) = s.read(Vec::with_capacity(64)).await;
            let _ = s.write_all(buf).await;
        });
        let mut s = MaybeTls::from(TcpStream::connect_addr(addr).await.unwrap());
        assert!(!s.is_tls() && s.alpn_protocol().is_none());
        assert_eq!(echo(&mut s, "plain").await, "plain");
    });
}

/// A peer whose FIN arrives with its last bytes: after the short read that takes them, the next
/// read sees the end (the epoll driver must keep the read-closed state; see
/// `dataplane/vendor/README.md`).
#[test]
fn fin_with_the_last_bytes_is_seen() {
    both(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        monoio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(b"bye".to_vec()).await;
        });
        let mut s = TcpStream::connect_addr(addr).await.unwrap();
        // Let the bytes and the FIN both arrive before the first read.
        monoio::time::sleep(std::time::Duration::from_millis(50)).await;
        let (r, _) = s.read(Vec::with_capacity(64)).await;
        assert_eq!(r.unwrap(), 3);
        let read = monoio::time::timeout(
            std::time::Duration::from_secs(5),
            s.read(Vec::with_capacity(64)),
        );
        let (r, _) = read.await.expect("the end of the stream is seen");
        assert_eq!(r.unwrap(), 0);
    });
}
