//! A test server on 127.0.0.1 that runs on a thread of its own, with its own runtime (the test's
//! blocking code and the binary under test call it meanwhile); stopped and joined when dropped.
//! The failure-injecting proxy, the TLS proxy and the stub servers all start this way.

use std::future::Future;
use std::net::SocketAddr;

use tokio::sync::oneshot;

pub struct Loopback {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Bind an ephemeral port and run `serve(listener, stop)` on it; `stop` resolves on drop.
    pub fn start<F, Fut>(serve: F) -> Loopback
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                serve(listener, stopped).await;
            });
        });
        Loopback {
            addr: addr_rx.recv().expect("server address"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Serve an axum app until dropped (requests in flight finish first).
    pub fn axum(app: axum::Router) -> Loopback {
        Loopback::start(|listener, stop| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await
                .ok();
        })
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
