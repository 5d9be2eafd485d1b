//! The three resource steps, one module each: each takes the validated
//! request and returns the response value; [`crate::cli`] does the I/O.

pub mod check;
pub mod get;
pub mod put;

use tokio::sync::watch;

/// SIGTERM or SIGINT received while a step runs, as a future a step races
/// its work against.
///
/// Concourse sends SIGTERM when a build is aborted. A step that owns
/// something outside the process (`out`'s embedded buildkitd, its runc
/// containers and mounts; `in`'s partial destination) must release it before
/// exiting, so the signal cancels the work instead of ending the process:
/// the step drops its in-flight future, runs its cleanup, and returns
/// [`crate::Error::Interrupted`].
#[derive(Debug, Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<&'static str>>,
}

impl Interrupt {
    /// Listens for SIGTERM and SIGINT from now on. Must run inside a tokio
    /// runtime. If the handlers cannot be installed the step runs without
    /// them (the signal then ends the process as before) and a warning says so.
    pub fn listen() -> Interrupt {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(None);
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::spawn(async move {
                    let name = tokio::select! {
                        _ = term.recv() => "SIGTERM",
                        _ = int.recv() => "SIGINT",
                    };
                    let _ = tx.send(Some(name));
                    // Keep the handlers installed (and the channel open)
                    // while the cleanup runs: a second signal must not kill
                    // the process half-way through it.
                    std::future::pending::<()>().await;
                });
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot handle SIGTERM/SIGINT, cleanup on abort is skipped: {e}");
            }
        }
        Interrupt { rx }
    }

    /// Never fires: for callers (tests, library users) without signals.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(None);
        // Leak the sender so the receiver never sees the channel close.
        std::mem::forget(tx);
        Interrupt { rx }
    }

    /// An interrupt fired by hand (tests).
    pub fn manual() -> (watch::Sender<Option<&'static str>>, Interrupt) {
        let (tx, rx) = watch::channel(None);
        (tx, Interrupt { rx })
    }

    /// Resolves with the signal's name once one arrived; pends forever
    /// otherwise.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.rx.clone();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The signal's name if one already arrived.
    pub fn fired(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }
}
