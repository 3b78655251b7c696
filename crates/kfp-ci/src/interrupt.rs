//! SIGINT/SIGTERM during a deploy: the first signal is recorded (one line on stderr) so that the
//! deploy starts no new uploads, lets the ones in flight finish (or roll back) and writes its
//! report; a second signal exits at once. Exit status 130 (SIGINT) or 143 (SIGTERM), the shell's
//! 128 + signal number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which signal stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }

    fn from_u8(v: u8) -> Option<Signal> {
        match v {
            1 => Some(Signal::Int),
            2 => Some(Signal::Term),
            _ => None,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Signal::Int => 1,
            Signal::Term => 2,
        }
    }
}

/// Shared between the signal listener and the deploy.
#[derive(Debug, Default)]
pub struct Interrupt {
    signal: AtomicU8,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    /// Not listening: never interrupted (tests, `plan`).
    pub fn none() -> Arc<Interrupt> {
        Arc::new(Interrupt::default())
    }

    /// Listen for SIGINT and SIGTERM from now on (the default action, dying mid-request, no
    /// longer applies).
    pub fn install() -> Arc<Interrupt> {
        let interrupt = Interrupt::none();
        let shared = interrupt.clone();
        let mut signals = Signals::new();
        tokio::spawn(async move {
            let mut first = true;
            while let Some(signal) = signals.next().await {
                if first {
                    first = false;
                    // Say it before anyone reacts: a run with nothing in flight exits as soon as
                    // it is told, and a line written after that is lost.
                    tracing::warn!(
                        "interrupted ({}): starting nothing new, finishing what is in flight, then writing the report (signal again to stop at once)",
                        signal.name()
                    );
                    shared.signal.store(signal.as_u8(), Ordering::SeqCst);
                    shared.notify.notify_waiters();
                } else {
                    // The user insists: no report, no cleanup. The report file still holds the
                    // placeholder written at the start (valid JSON saying the run did not finish).
                    eprintln!(
                        "kfp-ci: interrupted again ({}): stopping at once",
                        signal.name()
                    );
                    std::process::exit(i32::from(signal.exit_code()));
                }
            }
        });
        interrupt
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::from_u8(self.signal.load(Ordering::SeqCst))
    }

    pub fn is_set(&self) -> bool {
        self.signal().is_some()
    }

    /// Resolves once a signal has arrived (at once if one already has).
    pub async fn wait(&self) -> Signal {
        loop {
            let notified = self.notify.notified();
            if let Some(signal) = self.signal() {
                return signal;
            }
            notified.await;
        }
    }

    /// Record `signal` as if it had been received (tests).
    pub fn trigger(&self, signal: Signal) {
        self.signal.store(signal.as_u8(), Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// The signal streams, registered once (a signal between two waits is not lost).
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some((int, term)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!("cannot listen for signals: {e}");
                None
            }
        };
        Signals { streams }
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Option<Signal> {
        let (int, term) = self.streams.as_mut()?;
        tokio::select! {
            s = int.recv() => s.map(|()| Signal::Int),
            s = term.recv() => s.map(|()| Signal::Term),
        }
    }

    #[cfg(not(unix))]
    fn new() -> Signals {
        Signals {}
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Option<Signal> {
        tokio::signal::ctrl_c().await.ok().map(|()| Signal::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_once_triggered() {
        let i = Interrupt::none();
        assert!(!i.is_set());
        let waiter = {
            let i = i.clone();
            tokio::spawn(async move { i.wait().await })
        };
        tokio::task::yield_now().await;
        i.trigger(Signal::Term);
        assert_eq!(waiter.await.expect("join"), Signal::Term);
        assert_eq!(i.wait().await, Signal::Term);
        assert_eq!(Signal::Int.exit_code(), 130);
        assert_eq!(Signal::Term.exit_code(), 143);
    }
}
