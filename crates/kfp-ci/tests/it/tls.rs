//! A TLS-terminating TCP proxy on 127.0.0.1:0 in front of a plain-HTTP upstream (a real
//! `kfp-ci serve`, or a [`crate::faulty::Faulty`] proxy), with a throw-away CA and server
//! certificate generated at test time. Counts failed handshakes so tests can tell that a client
//! refused the certificate (rather than never connecting).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_rustls::rustls;

use crate::common::loopback::Loopback;

pub struct TlsProxy {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// The CA certificate (PEM) that signed the server certificate.
    pub ca_pem: PathBuf,
    handshake_failures: Arc<AtomicUsize>,
    _server: Loopback,
    _dir: tempfile::TempDir,
}

impl TlsProxy {
    /// Terminate TLS for `https://127.0.0.1:PORT` and pass the bytes on to `upstream`
    /// (`http://127.0.0.1:PORT[/prefix]`; only host and port are used).
    pub fn start(upstream: &str) -> TlsProxy {
        let upstream: SocketAddr = url::Url::parse(upstream)
            .expect("upstream URL")
            .socket_addrs(|| None)
            .expect("upstream address")[0];
        let dir = tempfile::tempdir().expect("tempdir");

        // A CA, and a server certificate for 127.0.0.1 signed by it.
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kfp-ci test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write ca.pem");

        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &ca).expect("server cert");

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let failures = handshake_failures.clone();
        let server = Loopback::start("TLS proxy", move |listener, mut stop| async move {
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop => return,
                };
                let acceptor = acceptor.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
        TlsProxy {
            url: format!("https://{}", server.addr),
            ca_pem,
            handshake_failures,
            _server: server,
            _dir: dir,
        }
    }

    /// TLS handshakes that failed (the client rejected our certificate, or gave up).
    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }
}
