//! [`LayerFeed`]: a manifest's layers handed out in order while later ones
//! download ahead.
//!
//! The consumer (the unpacker, the archive writer) must take layers in
//! order, but downloading them one after the other would leave the network
//! idle while a layer unpacks. So a prefetcher downloads up to
//! `parallel - 1` layers ahead into spool files in the destination, and the
//! consumer reads a spooled layer *while it is still being written*
//! ([`SpoolReader`] follows the file's growth), so a big layer that started
//! downloading early is unpacked at download speed rather than after its
//! download. A layer nobody has started yet is handed out as the live
//! network stream, with no file at all. Whichever side claims a layer first
//! (a per-layer flag) decides which.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use super::{BlobSource, FResult, FetchError};
use crate::image::Error;
use crate::oci::Digest;

/// A layer as handed to its consumer.
pub enum LayerInput<S: BlobSource> {
    /// Nobody started it: read it from the source now.
    Stream(S::Reader),
    /// It is being (or has been) downloaded into a spool file.
    Spooled(SpoolHandle<S>),
}

#[derive(Default)]
struct Progress {
    written: u64,
    /// `Some(Ok)` complete, `Some(Err(message))` failed or cancelled.
    done: Option<Result<(), String>>,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p);
        self.changed.notify_all();
    }
}

/// A layer being spooled: its file, progress, and final result.
pub struct SpoolHandle<S: BlobSource> {
    path: PathBuf,
    shared: Arc<Shared>,
    result: oneshot::Receiver<FResult<(), S>>,
}

impl<S: BlobSource> SpoolHandle<S> {
    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A blocking reader that follows the file as it grows and ends where
    /// the download ends (with an error if the download failed). Use it on
    /// a blocking thread.
    pub fn reader(&self) -> io::Result<SpoolReader> {
        Ok(SpoolReader {
            file: File::open(&self.path)?,
            pos: 0,
            shared: self.shared.clone(),
        })
    }

    /// Waits for the download to finish, with its typed error. After a
    /// failed read from [`SpoolHandle::reader`], this tells why.
    pub async fn finished(self) -> FResult<PathBuf, S> {
        match self.result.await {
            Ok(r) => r.map(|()| self.path),
            Err(_) => Err(cancelled(&self.path).into()),
        }
    }
}

fn cancelled(path: &Path) -> Error {
    Error::Stream(
        format!("spooling layer to {}", path.display()),
        io::Error::new(io::ErrorKind::Interrupted, "download was cancelled"),
    )
}

/// See [`SpoolHandle::reader`].
pub struct SpoolReader {
    file: File,
    pos: u64,
    shared: Arc<Shared>,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut p = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            if self.pos < p.written {
                let available = (p.written - self.pos).min(buf.len() as u64) as usize;
                drop(p);
                let n = self.file.read(&mut buf[..available])?;
                self.pos += n as u64;
                return Ok(n);
            }
            match &p.done {
                Some(Ok(())) => return Ok(0),
                Some(Err(message)) => return Err(io::Error::other(message.clone())),
                None => {
                    p = self
                        .shared
                        .changed
                        .wait(p)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }
}

/// Marks a spool failed when its task ends without finishing (aborted), so
/// a reader blocked on it wakes up.
struct FinishGuard(Arc<Shared>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.update(|p| {
            if p.done.is_none() {
                p.done = Some(Err("layer download was cancelled".into()));
            }
        });
    }
}

type HandleSlot<S> = oneshot::Receiver<FResult<SpoolHandle<S>, S>>;
type HandleSender<S> = oneshot::Sender<FResult<SpoolHandle<S>, S>>;

/// Hands out a manifest's layers in order while fetching ahead (see the
/// module docs). Dropping it cancels the prefetcher and its downloads;
/// [`LayerFeed::close`] also waits until they are gone, so the spool
/// directory can be removed without a download writing into it afterwards.
pub struct LayerFeed<S: BlobSource> {
    source: Arc<S>,
    layers: Vec<(Digest, u64)>,
    claims: Arc<Vec<AtomicBool>>,
    handles: Vec<Option<HandleSlot<S>>>,
    next: usize,
    prefetcher: tokio::task::JoinHandle<()>,
    /// Closed when the prefetcher and every download task it started have
    /// been dropped: each holds a sender, nobody sends.
    tasks_gone: mpsc::Receiver<()>,
}

impl<S: BlobSource> LayerFeed<S> {
    /// Starts fetching ahead; spool files go into `spool_dir`.
    pub async fn start(
        source: Arc<S>,
        layers: Vec<(Digest, u64)>,
        spool_dir: &Path,
        parallel: usize,
    ) -> crate::image::Result<Self> {
        tokio::fs::create_dir_all(spool_dir)
            .await
            .map_err(|e| Error::io("creating spool directory", spool_dir, e))?;
        let claims: Arc<Vec<AtomicBool>> =
            Arc::new(layers.iter().map(|_| AtomicBool::new(false)).collect());
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for _ in &layers {
            let (tx, rx) = oneshot::channel();
            senders.push(Some(tx));
            handles.push(Some(rx));
        }
        let (alive, tasks_gone) = mpsc::channel(1);
        let prefetcher = tokio::spawn(prefetch(
            source.clone(),
            layers.clone(),
            claims.clone(),
            senders,
            spool_dir.to_owned(),
            parallel.saturating_sub(1),
            alive,
        ));
        Ok(LayerFeed {
            source,
            layers,
            claims,
            handles,
            next: 0,
            prefetcher,
            tasks_gone,
        })
    }

    /// Cancels whatever is still downloading and waits until no download
    /// task is left, so nothing writes into the spool directory any more.
    /// Spool files already handed out stay readable (open files survive
    /// removal).
    pub async fn close(mut self) {
        self.prefetcher.abort();
        while self.tasks_gone.recv().await.is_some() {}
    }

    /// The next layer, in manifest order.
    pub async fn next(&mut self) -> Option<FResult<LayerInput<S>, S>> {
        let i = self.next;
        let (digest, size) = self.layers.get(i)?.clone();
        self.next += 1;
        if self.claims[i]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Some(
                self.source
                    .blob_reader(&digest, size)
                    .await
                    .map(LayerInput::Stream)
                    .map_err(FetchError::Source),
            );
        }
        let rx = self.handles[i]
            .take()
            .expect("each layer is handed out once");
        Some(match rx.await {
            Ok(result) => result.map(LayerInput::Spooled),
            Err(_) => Err(Error::Unsupported {
                what: format!("layer {digest}"),
                reason: "prefetch was cancelled".into(),
            }
            .into()),
        })
    }
}

impl<S: BlobSource> Drop for LayerFeed<S> {
    fn drop(&mut self) {
        self.prefetcher.abort();
    }
}

async fn prefetch<S: BlobSource>(
    source: Arc<S>,
    layers: Vec<(Digest, u64)>,
    claims: Arc<Vec<AtomicBool>>,
    mut senders: Vec<Option<HandleSender<S>>>,
    spool_dir: PathBuf,
    slots: usize,
    alive: mpsc::Sender<()>,
) {
    if slots == 0 {
        return;
    }
    let permits = Arc::new(Semaphore::new(slots));
    // Dropped, aborting its downloads, when this task is aborted.
    let mut tasks = JoinSet::new();
    for (i, (digest, size)) in layers.into_iter().enumerate().skip(1) {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        if claims[i]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // The consumer got here first and streams it.
            continue;
        }
        let tx = senders[i].take().expect("each layer is claimed once");
        let source = source.clone();
        let spool_dir = spool_dir.clone();
        let alive = alive.clone();
        tasks.spawn(async move {
            spool_layer(&*source, i, &digest, size, &spool_dir, tx).await;
            drop(permit);
            drop(alive);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Spools layer `position` of the manifest. Files are named by position, not
/// digest alone: an image may list the same layer twice (`COPY f` / `RUN rm
/// f` / `COPY f` gives `[B, A, W, A]`), and each copy is read, then removed,
/// on its own.
async fn spool_layer<S: BlobSource>(
    source: &S,
    position: usize,
    digest: &Digest,
    size: u64,
    dir: &Path,
    handle_tx: HandleSender<S>,
) {
    let path = dir.join(format!("{position}-{}.spool", digest.hex()));
    // Created synchronously (a quick local call): an async create runs on a
    // blocking thread that would outlive a cancelled task and could create
    // the file after `LayerFeed::close` returned.
    let file = match std::fs::File::create(&path) {
        Ok(f) => tokio::fs::File::from_std(f),
        Err(e) => {
            let _ = handle_tx.send(Err(Error::io("creating", &path, e).into()));
            return;
        }
    };
    let shared = Arc::new(Shared::default());
    let (result_tx, result_rx) = oneshot::channel();
    let _ = handle_tx.send(Ok(SpoolHandle {
        path: path.clone(),
        shared: shared.clone(),
        result: result_rx,
    }));
    let guard = FinishGuard(shared.clone());
    let result = copy_into(source, digest, size, file, &path, &shared).await;
    shared.update(|p| {
        p.done = Some(match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("downloading layer {digest} failed: {e}")),
        })
    });
    drop(guard);
    let _ = result_tx.send(result);
}

async fn copy_into<S: BlobSource>(
    source: &S,
    digest: &Digest,
    size: u64,
    mut file: tokio::fs::File,
    path: &Path,
    shared: &Shared,
) -> FResult<(), S> {
    let mut reader = source
        .blob_reader(digest, size)
        .await
        .map_err(FetchError::Source)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| Error::Stream(format!("downloading layer {digest}"), e))?;
        if n == 0 {
            return Ok(());
        }
        file.write_all(&buf[..n])
            .await
            .map_err(|e| Error::io("writing", path, e))?;
        // Only what reached the file may be announced to readers.
        file.flush()
            .await
            .map_err(|e| Error::io("writing", path, e))?;
        shared.update(|p| p.written += n as u64);
    }
}
