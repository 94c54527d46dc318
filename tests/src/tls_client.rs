//! A blocking TLS client for the downstream TLS tests, on rustls: it can verify against a test CA
//! or accept anything, offer only RSA signatures or only TLS 1.2, present a client certificate,
//! resume sessions, and tell which certificate the server sent.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::client::IO_TIMEOUT;

/// How a [`TlsClient`] connects.
#[derive(Debug, Default, Clone)]
pub struct TlsClientOptions<'a> {
    /// Verify the server against this CA (None: accept any certificate).
    pub ca: Option<&'a Path>,
    /// Present this client certificate and key.
    pub client_cert: Option<(&'a Path, &'a Path)>,
    /// Offer only RSA signature schemes.
    pub rsa_only: bool,
    /// Speak TLS 1.2 only.
    pub tls12_only: bool,
}

/// Certificates of a PEM file.
pub fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A client config for `opts` (keep it to resume sessions: it holds the session cache).
pub fn tls_client_config(opts: &TlsClientOptions<'_>) -> Arc<ClientConfig> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap_or_else(|e| panic!("versions: {e}"));
    let inner = opts.ca.map(|ca| {
        let mut roots = rustls::RootCertStore::empty();
        for c in pem_certs(ca) {
            roots.add(c).unwrap_or_else(|e| panic!("CA: {e}"));
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap_or_else(|e| panic!("verifier: {e}"))
    });
    let verifier = Arc::new(Verifier {
        inner,
        provider: provider.clone(),
        rsa_only: opts.rsa_only,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match opts.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certs(cert),
                PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| panic!("key: {e}")),
            )
            .unwrap_or_else(|e| panic!("client cert: {e}")),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Verifies with webpki when a CA is given, else accepts anything; offers RSA only if asked.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    rsa_only: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let all = self
            .provider
            .signature_verification_algorithms
            .supported_schemes();
        if !self.rsa_only {
            return all;
        }
        all.into_iter()
            .filter(|s| {
                matches!(
                    s,
                    SignatureScheme::RSA_PSS_SHA256
                        | SignatureScheme::RSA_PSS_SHA384
                        | SignatureScheme::RSA_PSS_SHA512
                        | SignatureScheme::RSA_PKCS1_SHA256
                        | SignatureScheme::RSA_PKCS1_SHA384
                        | SignatureScheme::RSA_PKCS1_SHA512
                )
            })
            .collect()
    }
}

/// A response read by [`TlsClient::get`].
#[derive(Debug, Clone)]
pub struct TlsResponse {
    /// Status code.
    pub status: u16,
    /// Fields, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (by content-length).
    pub body: String,
}

impl TlsResponse {
    /// The first value of field `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A TLS connection to the gateway, handshake done.
pub struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    /// Connects to `addr` with SNI `sni` (an IP address sends none) and completes the handshake.
    /// With TLS 1.3, a server that refuses the client's certificate says so only at the first
    /// read: see [`TlsClient::get`].
    pub fn connect(
        addr: SocketAddr,
        sni: &str,
        config: &Arc<ClientConfig>,
    ) -> io::Result<TlsClient> {
        let name = ServerName::try_from(sni.to_owned()).map_err(io::Error::other)?;
        let conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            stream,
            buf: Vec::new(),
        })
    }

    /// The leaf certificate the server sent (DER).
    pub fn server_cert(&self) -> Vec<u8> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// Whether the session was resumed.
    pub fn resumed(&self) -> bool {
        self.stream.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The protocol chosen by ALPN.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The cipher suite agreed.
    pub fn suite(&self) -> Option<rustls::CipherSuite> {
        self.stream
            .conn
            .negotiated_cipher_suite()
            .map(|s| s.suite())
    }

    /// The TLS version spoken.
    pub fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    /// `GET path` with extra header lines (`"name: value"`), on this connection (kept alive).
    pub fn get(&mut self, path: &str, extra: &[&str]) -> io::Result<TlsResponse> {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: t\r\n");
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        self.stream.write_all(req.as_bytes())?;
        self.stream.flush()?;
        self.read_response()
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_response(&mut self) -> io::Result<TlsResponse> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let (status, headers, used) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(n) = r.parse(&self.buf).map_err(io::Error::other)? {
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                break (r.code.unwrap_or(0), headers, n);
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no response head"));
            }
            self.fill()?;
        };
        self.buf.drain(..used);
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < len {
            self.fill()?;
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Ok(TlsResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
