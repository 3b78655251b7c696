//! One small loopback HTTP server core for the test stand-ins (ntfy, the forges): an axum app
//! on 127.0.0.1:0 in a thread with its own runtime, shut down gracefully when dropped.

use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub struct Loopback {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Loopback {
    /// Serve `app`; returns once it listens. `what` names the stand-in in a failure.
    pub fn serve(what: &str, app: axum::Router) -> Loopback {
        let (url_tx, url_rx) = std::sync::mpsc::channel();
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
                let addr = listener.local_addr().expect("addr");
                url_tx.send(format!("http://{addr}")).expect("send url");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let url = url_rx
            .recv()
            .unwrap_or_else(|_| panic!("{what} stand-in did not start"));
        Loopback {
            url,
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
