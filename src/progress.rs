//! Per-layer progress of long transfers on stderr: `in`'s layer downloads
//! and a put's layer uploads (`params.image`, the Docker Engine read-back).
//!
//! Concourse's build log cannot redraw a line, so there (stderr not a
//! terminal) progress is plain lines: one at most every [`LINE_INTERVAL`]
//! with the totals and each layer in flight, plus one line when a layer
//! completes, and a summary at the end. Someone running a binary by hand on
//! a terminal gets `indicatif` bars instead (one per layer, one for the
//! total).
//!
//! A [`Transfer`] is told the layers it will move ([`Transfer::expect`]) and
//! counts bytes through [`Transfer::reader`], an `AsyncRead` wrapper, so the
//! code that moves the bytes is unchanged.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, ReadBuf};

/// Plain progress lines are at most this frequent (layer completions aside):
/// often enough to show a long transfer is alive, rare enough for a build log.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Decides when the next periodic line is due.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Instant,
}

impl Throttle {
    /// A throttle whose first line is due `interval` after `start`.
    pub fn new(interval: Duration, start: Instant) -> Throttle {
        Throttle {
            interval,
            last: start,
        }
    }

    /// Whether a line is due at `now`; if so, the next one is due an
    /// interval later.
    pub fn due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.last) >= self.interval {
            self.last = now;
            true
        } else {
            false
        }
    }
}

/// `1234567` → `1.2 MB` (decimal units, as `docker pull` prints).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`.
fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

#[derive(Debug, Clone)]
struct Layer {
    digest: String,
    size: u64,
    done: u64,
    started: bool,
    finished: bool,
}

#[derive(Debug)]
struct State {
    layers: Vec<Layer>,
    index: HashMap<String, usize>,
    /// Bytes actually moved (not counting layers the registry had).
    moved: u64,
    throttle: Throttle,
}

impl State {
    fn totals(&self) -> (usize, usize, u64, u64) {
        let finished = self.layers.iter().filter(|l| l.finished).count();
        let done = self.layers.iter().map(|l| l.done.min(l.size)).sum();
        let size = self.layers.iter().map(|l| l.size).sum();
        (finished, self.layers.len(), done, size)
    }

    /// `<verb>: 2/5 layers, 80.0 MB of 200.0 MB (40%), 16.0 MB/s; 0123456789ab 30.0 MB/50.0 MB, ...`
    fn line(&self, verb: &str, elapsed: Duration) -> String {
        let (finished, count, done, size) = self.totals();
        let percent = (done * 100).checked_div(size).unwrap_or(100);
        let mut line = format!(
            "{verb}: {finished}/{count} layers, {} of {} ({percent}%), {}",
            human(done),
            human(size),
            rate(self.moved, elapsed)
        );
        let in_flight: Vec<String> = self
            .layers
            .iter()
            .filter(|l| l.started && !l.finished)
            .map(|l| {
                format!(
                    "{} {}/{}",
                    short(&l.digest),
                    human(l.done.min(l.size)),
                    human(l.size)
                )
            })
            .collect();
        if !in_flight.is_empty() {
            line.push_str("; ");
            line.push_str(&in_flight.join(", "));
        }
        line
    }
}

fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 0.001 {
        return "-".into();
    }
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

struct Bars {
    multi: indicatif::MultiProgress,
    total: indicatif::ProgressBar,
    layers: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

struct Inner {
    verb: &'static str,
    past: &'static str,
    started: Instant,
    state: Mutex<State>,
    bars: Option<Bars>,
}

/// The progress of one transfer (one download or one push). Cheap to clone;
/// clones report into the same totals.
#[derive(Clone)]
pub struct Transfer(Arc<Inner>);

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("verb", &self.0.verb)
            .finish()
    }
}

impl Transfer {
    /// A transfer reported as `verb` while running and `past` at the end
    /// (`downloading`/`downloaded`): bars when stderr is a terminal, plain
    /// lines otherwise.
    pub fn new(verb: &'static str, past: &'static str) -> Transfer {
        Transfer::with_bars(verb, past, std::io::stderr().is_terminal())
    }

    fn with_bars(verb: &'static str, past: &'static str, bars: bool) -> Transfer {
        let started = Instant::now();
        let bars = bars.then(|| {
            let multi =
                indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
            let total = multi.add(indicatif::ProgressBar::new(0));
            total.set_style(bar_style(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            ));
            total.set_prefix(verb);
            Bars {
                multi,
                total,
                layers: Mutex::new(HashMap::new()),
            }
        });
        Transfer(Arc::new(Inner {
            verb,
            past,
            started,
            state: Mutex::new(State {
                layers: Vec::new(),
                index: HashMap::new(),
                moved: 0,
                throttle: Throttle::new(LINE_INTERVAL, started),
            }),
            bars,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock only loses a progress line.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces a layer (once per digest), so the totals count it before
    /// its bytes start moving.
    pub fn expect(&self, digest: &str, size: u64) {
        let mut state = self.state();
        if state.index.contains_key(digest) {
            return;
        }
        let i = state.layers.len();
        state.index.insert(digest.to_string(), i);
        state.layers.push(Layer {
            digest: digest.to_string(),
            size,
            done: 0,
            started: false,
            finished: false,
        });
        drop(state);
        if let Some(bars) = &self.0.bars {
            bars.total.inc_length(size);
            bars.total.set_message(self.layers_message());
        }
    }

    fn layers_message(&self) -> String {
        let (finished, count, _, _) = self.state().totals();
        format!("{finished}/{count} layers")
    }

    /// Counts `inner`'s bytes as layer `digest`'s. Opening a layer again (a
    /// retry) starts its count over.
    pub fn reader<R>(&self, digest: &str, size: u64, inner: R) -> Counting<R> {
        self.expect(digest, size);
        let mut state = self.state();
        let i = state.index[digest];
        let layer = &mut state.layers[i];
        let redo = layer.done;
        layer.done = 0;
        layer.started = true;
        layer.finished = false;
        drop(state);
        if let Some(bars) = &self.0.bars {
            bars.total
                .set_position(bars.total.position().saturating_sub(redo));
            let bar = bars.multi.add(indicatif::ProgressBar::new(size));
            bar.set_style(bar_style("{prefix:>12} [{bar:30}] {bytes}/{total_bytes}"));
            bar.set_prefix(short(digest).to_string());
            if let Some(old) = bars
                .layers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest.to_string(), bar)
            {
                old.finish_and_clear();
            }
        }
        Counting {
            inner,
            transfer: Some(self.clone()),
            digest: digest.to_string(),
            finished: false,
        }
    }

    fn advance(&self, digest: &str, n: u64) {
        let line = {
            let mut state = self.state();
            let Some(&i) = state.index.get(digest) else {
                return;
            };
            state.layers[i].done += n;
            state.moved += n;
            let due = self.0.bars.is_none() && state.throttle.due(Instant::now());
            due.then(|| state.line(self.0.verb, self.0.started.elapsed()))
        };
        if let Some(bars) = &self.0.bars {
            bars.total.inc(n);
            if let Some(bar) = bars
                .layers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(digest)
            {
                bar.inc(n);
            }
        }
        if let Some(line) = line {
            tracing::info!("{line}");
        }
    }

    /// Marks layer `digest` complete (its reader hit EOF).
    pub fn finish(&self, digest: &str) {
        self.complete(digest, "done");
    }

    /// Marks layer `digest` complete without moving it (the registry had it).
    pub fn skipped(&self, digest: &str, size: u64) {
        self.expect(digest, size);
        {
            let mut state = self.state();
            let i = state.index[digest];
            state.layers[i].done = size;
        }
        if let Some(bars) = &self.0.bars {
            bars.total.inc(size);
        }
        self.complete(digest, "already in the registry");
    }

    fn complete(&self, digest: &str, how: &str) {
        let line = {
            let mut state = self.state();
            let Some(&i) = state.index.get(digest) else {
                return;
            };
            let layer = &mut state.layers[i];
            if layer.finished {
                return;
            }
            layer.finished = true;
            let size = layer.size;
            let (finished, count, _, _) = state.totals();
            format!(
                "{}: layer {finished}/{count} {} {how} ({})",
                self.0.verb,
                short(digest),
                human(size)
            )
        };
        match &self.0.bars {
            Some(bars) => {
                if let Some(bar) = bars
                    .layers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(digest)
                {
                    bar.finish_and_clear();
                }
                bars.total.set_message(self.layers_message());
            }
            None => tracing::info!("{line}"),
        }
    }

    /// The closing line: `<past> 5/5 layers, 200.0 MB in 8.1s (24.7 MB/s)`.
    pub fn summary(&self) -> String {
        let elapsed = self.0.started.elapsed();
        let state = self.state();
        let (finished, count, done, _) = state.totals();
        format!(
            "{} {finished}/{count} layers, {} in {:.1}s ({})",
            self.0.past,
            human(done),
            elapsed.as_secs_f64(),
            rate(state.moved, elapsed)
        )
    }

    /// Clears the bars (if any) and logs [`Transfer::summary`], when any
    /// layer was moved or found in place (a `skip_download` get moves none).
    pub fn done(&self) {
        if let Some(bars) = &self.0.bars {
            bars.total.finish_and_clear();
            let _ = bars.multi.clear();
        }
        let any = self.state().layers.iter().any(|l| l.started || l.finished);
        if any {
            tracing::info!("{}", self.summary());
        }
    }
}

fn bar_style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("a valid constant template")
        .progress_chars("=> ")
}

/// An `AsyncRead` that reports what passes through it to a [`Transfer`].
pub struct Counting<R> {
    inner: R,
    transfer: Option<Transfer>,
    digest: String,
    finished: bool,
}

impl<R> Counting<R> {
    /// Passes `inner` through without reporting (a config blob, not a layer).
    pub fn untracked(inner: R) -> Counting<R> {
        Counting {
            inner,
            transfer: None,
            digest: String::new(),
            finished: true,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(transfer)) = (&poll, &self.transfer) {
            let n = (buf.filled().len() - before) as u64;
            if n > 0 {
                transfer.advance(&self.digest, n);
            } else if buf.remaining() > 0 && !self.finished {
                transfer.finish(&self.digest);
                self.finished = true;
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests;
