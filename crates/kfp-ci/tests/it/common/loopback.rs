//! One loopback server core for every test server (the ntfy and forge stand-ins, the faulty
//! proxy, the TLS proxy, the stubs): a server on 127.0.0.1:0 in a thread with its own runtime
//! (the test's blocking code and the binary under test call it meanwhile), stopped and joined
//! when dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub struct Loopback {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Loopback {
    /// Serve `app`; returns once it listens. `what` names the stand-in in a failure.
    pub fn serve(what: &str, app: axum::Router) -> Loopback {
        Loopback::start(what, |listener, stop| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .expect("serve");
        })
    }

    /// Bind 127.0.0.1:0 and run `serve(listener, stop)` on it (a server that is no axum app: a
    /// TLS proxy); `stop` resolves on drop.
    pub fn start<F, Fut>(what: &str, serve: F) -> Loopback
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                serve(listener, shutdown_rx).await;
            });
        });
        let addr = addr_rx
            .recv()
            .unwrap_or_else(|_| panic!("{what} stand-in did not start"));
        Loopback {
            url: format!("http://{addr}"),
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
