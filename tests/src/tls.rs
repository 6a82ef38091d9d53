//! TLS for the tests: a private CA with server and client certificates
//! (one of them expired), and [`TemporalFront`], a gRPC front to a dev server
//! as Temporal Cloud or a TLS cluster presents one: TLS, optionally a
//! client certificate it checks, optionally an API key it checks, and
//! methods it refuses (an operator API a namespace user may not call).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A private CA and what it issued, as PEM files in a directory of their own.
pub struct TestPki {
    /// The CA certificate: what a client or server given it trusts.
    pub ca: PathBuf,
    /// A server certificate for `localhost` and `127.0.0.1`, and its key.
    pub server_cert: PathBuf,
    /// The server certificate's key.
    pub server_key: PathBuf,
    /// A client certificate, valid now, and its key.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
    /// A client certificate that expired in 2020, with the same key.
    pub expired_client_cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// A fresh CA named `name` and its certificates.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |file: &str, pem: String| {
            let path = dir.path().join(file);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_pem = (server.signed_by(&server_key, &issuer))
            .expect("server certificate")
            .pem();

        let client_key = KeyPair::generate().expect("client key");
        let client = |expired: bool| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
            params
                .distinguished_name
                .push(DnType::CommonName, "keylease-worker");
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            if expired {
                params.not_before = date_time_ymd(2019, 1, 1);
                params.not_after = date_time_ymd(2020, 1, 1);
            }
            (params.signed_by(&client_key, &issuer))
                .expect("client certificate")
                .pem()
        };
        Self {
            ca: write("ca.pem", ca_pem),
            server_cert: write("server.pem", server_pem),
            server_key: write("server-key.pem", server_key.serialize_pem()),
            client_cert: write("client.pem", client(false)),
            expired_client_cert: write("client-expired.pem", client(true)),
            client_key: write("client-key.pem", client_key.serialize_pem()),
            _dir: dir,
        }
    }

    /// A TLS acceptor with the server certificate; with `client_ca`, it
    /// also asks for a client certificate issued by that CA and refuses
    /// the handshake without one.
    pub fn acceptor(&self, client_ca: Option<&Path>, alpn: &[&[u8]]) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).expect("client CA") {
                    roots.add(cert.expect("client CA PEM")).expect("client CA");
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let chain = CertificateDer::pem_file_iter(&self.server_cert)
            .expect("server certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_file(&self.server_key).expect("server key");
        let mut config = builder
            .with_single_cert(chain, key)
            .expect("server TLS config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What a [`TemporalFront`] demands of its clients.
#[derive(Default)]
pub struct FrontRules {
    /// Serve TLS with this acceptor (see [`TestPki::acceptor`]); plain h2c without.
    pub tls: Option<TlsAcceptor>,
    /// Answer `UNAUTHENTICATED` unless `authorization: Bearer <this>` is sent.
    pub api_key: Option<String>,
    /// gRPC methods (`/package.Service/Method`) answered `PERMISSION_DENIED`.
    pub refuse: Vec<String>,
}

/// A gRPC front on a free loopback port relaying to a Temporal frontend
/// over h2c, after the checks of its [`FrontRules`]. Stops when dropped.
pub struct TemporalFront {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TemporalFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What each connection of a front shares.
struct Front {
    upstream: SocketAddr,
    rules: FrontRules,
    client: Client<HttpConnector, Incoming>,
}

type Reply = Response<BoxBody<Bytes, hyper::Error>>;

impl TemporalFront {
    /// Starts a front to the frontend at `upstream` (`host:port`).
    pub async fn start(upstream: &str, rules: FrontRules) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("front address");
        let front = Arc::new(Front {
            upstream: upstream.parse().expect("upstream address"),
            rules,
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let front = front.clone();
                tokio::spawn(async move {
                    match front.rules.tls.clone() {
                        None => serve(stream, front).await,
                        // A refused handshake (no or a bad client certificate) ends here.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve(stream, front).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

/// Serves HTTP/2 on one client connection.
async fn serve(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, front: Arc<Front>) {
    let service = hyper::service::service_fn(move |request| relay(request, front.clone()));
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Checks one call against the rules, then relays it to the frontend.
async fn relay(mut request: Request<Incoming>, front: Arc<Front>) -> Result<Reply, Infallible> {
    let path = request.uri().path().to_owned();
    if front.rules.refuse.contains(&path) {
        return Ok(grpc_status(7, "refused by the test front"));
    }
    if let Some(key) = &front.rules.api_key {
        let sent = request.headers().get("authorization");
        if sent.and_then(|value| value.to_str().ok()) != Some(&format!("Bearer {key}")) {
            return Ok(grpc_status(16, "missing or wrong API key"));
        }
    }
    let target = format!("http://{}{path}", front.upstream);
    *request.uri_mut() = target.parse().expect("upstream URI");
    Ok(match front.client.request(request).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(err) => grpc_status(14, &format!("upstream: {err}")),
    })
}

/// A trailers-only gRPC answer with `code`.
fn grpc_status(code: u8, message: &str) -> Reply {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .header("grpc-message", message.replace(' ', "%20"))
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .expect("gRPC status response")
}
