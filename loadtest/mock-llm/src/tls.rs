//! HTTPS for the mock (`--tls-cert FILE --tls-key FILE`): the test peer of the gateway's TLS
//! towards upstreams.
//!
//! Each accepted connection does its TLS handshake (recording the SNI the client sent, for
//! `/stats`), then its plaintext is relayed over a Unix socket pair to the very connection loop
//! a plain client gets (`conn.rs`). The relay keeps that loop's posted, cancelable reads (how it
//! notices a client going away mid-stream) working unchanged: a TLS read cannot be cancelled
//! without losing the bytes it holds, a Unix socket read can. It costs two copies per byte,
//! which a test peer can afford; the benchmark path (`GET /` over plain TCP) is untouched.

use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpStream, UnixStream};
use monoio_rustls::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::conn::{self, race, Either};
use crate::routes::Shared;
use crate::state;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The server config of `--tls-cert`/`--tls-key`: that chain and key, ALPN `http/1.1`.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    if chain.is_empty() {
        return Err(anyhow!("{}: no CERTIFICATE", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key from {}", key.display()))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .context("loading the private key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Recorder(Arc::new(CertifiedKey::new(
            chain, signer,
        )))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the one certificate, noting each handshake's SNI.
#[derive(Debug)]
struct Recorder(Arc<CertifiedKey>);

impl ResolvesServerCert for Recorder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        state::tls_hello(hello.server_name());
        Some(self.0.clone())
    }
}

/// One TLS connection: handshake, then relay to a plain connection loop.
pub async fn serve(tcp: TcpStream, acceptor: TlsAcceptor, sh: &'static Shared) {
    let _ = tcp.set_nodelay(true);
    let tls = match monoio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        // A client that refused our certificate, or never finished: nothing to serve.
        _ => return,
    };
    let Ok((inner, outer)) = UnixStream::pair() else {
        return;
    };
    let (rd, wr) = inner.into_split();
    monoio::spawn(conn::serve_halves(rd, wr, sh));
    let (mut trd, mut twr) = tls.into_split();
    let (mut lrd, mut lwr) = outer.into_split();
    // Client to mock: when the client closes, the loop sees its input end.
    let up = async {
        copy(&mut trd, &mut lwr).await;
        let _ = lwr.shutdown().await;
    };
    // Mock to client: when the loop closes, so does the TLS connection (close_notify, FIN).
    let down = async {
        copy(&mut lrd, &mut twr).await;
        let _ = twr.shutdown().await;
    };
    let mut down = pin!(down);
    if let Either::Right(()) = race(down.as_mut(), up).await {
        down.await;
    }
}

async fn copy<R: AsyncReadRent, W: AsyncWriteRent>(r: &mut R, w: &mut W) {
    let mut buf = Vec::with_capacity(16 << 10);
    loop {
        buf.clear();
        let (res, b) = r.read(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
        let (res, b) = w.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}
