//! Renders BuildKit's `Status` stream like `buildctl --progress plain`: one
//! `#N` number per vertex in first-seen order, its name when it starts,
//! finished status lines (`#N transferring context: 1.2MB done`), log lines
//! prefixed with the seconds since the vertex started, and `#N CACHED`,
//! `#N DONE 1.2s` or `#N ERROR: …` at the end. No cursor movement: the output
//! is meant for CI logs.
//!
//! Each `StatusResponse` is a delta: a vertex is re-sent whenever it changes
//! (possibly several times per message, possibly going back from completed
//! to running), so the last entry for a digest wins. The renderer also keeps
//! what the error report needs: the failing step and its last log lines.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use prost_types::Timestamp;

use super::proto::moby::buildkit::v1::{StatusResponse, Vertex, VertexLog, VertexStatus};

/// How many log lines of each vertex are kept for error reports.
const LOG_TAIL: usize = 20;

#[derive(Debug, Default)]
struct VertexState {
    number: usize,
    name: String,
    started: Option<Timestamp>,
    completed: Option<Timestamp>,
    cached: bool,
    error: String,
    announced: bool,
    finished: bool,
    tail: VecDeque<String>,
    partial: HashMap<i64, LineBuffer>,
    statuses_done: HashMap<String, bool>,
    /// When each status was last printed while still running.
    statuses_printed: HashMap<String, std::time::Instant>,
}

/// How often a long-running status (an upload, a pull) is re-printed.
const STATUS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The failing step of a build, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedStep {
    /// Vertex name, e.g. `[stage-0 3/4] RUN false`.
    pub name: String,
    /// The daemon's error for it.
    pub error: String,
    /// Its last log lines.
    pub logs: Vec<String>,
}

/// Counts of a finished build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Vertices that completed (cached or not).
    pub total_steps: usize,
    /// Vertices that were cached.
    pub cached_steps: usize,
    /// The first vertex that failed (cancellations excluded).
    pub failed: Option<FailedStep>,
}

/// Plain-text progress printer.
pub struct Printer {
    out: Box<dyn Write + Send>,
    vertices: HashMap<String, VertexState>,
    next_number: usize,
    current: Option<String>,
    failed: Option<String>,
}

impl Printer {
    /// Prints to `out` (stderr in production).
    pub fn new(out: Box<dyn Write + Send>) -> Printer {
        Printer {
            out,
            vertices: HashMap::new(),
            next_number: 1,
            current: None,
            failed: None,
        }
    }

    /// Prints to stderr, through the secret scrubber.
    pub fn stderr() -> Printer {
        Printer::new(Box::new(crate::secret::ScrubWriter::new(std::io::stderr())))
    }

    fn state(&mut self, digest: &str) -> &mut VertexState {
        self.vertices.entry(digest.to_owned()).or_default()
    }

    /// Writes one line for `digest`, separating vertices by a blank line.
    fn line(&mut self, digest: &str, text: &str) {
        // Numbers are given in order of first output, like buildctl, so
        // vertices that never print leave no gaps.
        let next = self.next_number;
        let st = self.state(digest);
        if st.number == 0 {
            st.number = next;
        }
        let number = st.number;
        if number == next {
            self.next_number += 1;
        }
        let switch = self.current.as_deref() != Some(digest);
        if switch && self.current.is_some() {
            let _ = writeln!(self.out);
        }
        self.current = Some(digest.to_owned());
        // Remote text (vertex names, logs, errors): one line, tabs kept,
        // no terminal controls (see `crate::text`).
        let text = crate::text::escape_line_keep_tabs(text);
        let _ = writeln!(self.out, "#{number} {text}");
    }

    /// Applies one status delta and prints what changed.
    pub fn update(&mut self, response: &StatusResponse) {
        for v in &response.vertexes {
            self.vertex(v);
        }
        for s in &response.statuses {
            self.status(s);
        }
        for log in &response.logs {
            self.log(log);
        }
        for w in &response.warnings {
            let text = format!("WARN: {}", String::from_utf8_lossy(&w.short));
            self.line(&w.vertex.clone(), &text);
        }
        // Completion last, so that logs of the same delta come before it.
        for v in &response.vertexes {
            self.finish_if_done(&v.digest);
        }
        let _ = self.out.flush();
    }

    /// Takes a vertex's latest state (the last entry for a digest wins) and
    /// prints its name once, when it first shows any progress, so that
    /// vertices that never run leave no line.
    fn vertex(&mut self, v: &Vertex) {
        let st = self.state(&v.digest);
        st.name = v.name.clone();
        st.cached = v.cached;
        st.started = v.started;
        st.error = v.error.clone();
        let was_completed = st.completed.is_some();
        st.completed = v.completed;
        if v.completed.is_none() && was_completed {
            // Reopened: it will report completion again.
            st.finished = false;
        }
        let announce = !st.announced && (v.started.is_some() || v.cached || v.completed.is_some());
        if announce {
            st.announced = true;
            let name = st.name.clone();
            self.line(&v.digest, &name);
        }
    }

    /// Prints a status (an upload, a pull) while it runs, throttled so that
    /// a CI log is not flooded, and once more when it is done.
    fn status(&mut self, s: &VertexStatus) {
        let done = s.completed.is_some();
        let st = self.state(&s.vertex);
        let key = s.id.clone();
        let seen_done = st.statuses_done.get(&key).copied().unwrap_or(false);
        // Throttling: a running status at most every STATUS_INTERVAL,
        // then its finished state once.
        let now = std::time::Instant::now();
        let due = !done
            && !seen_done
            && st
                .statuses_printed
                .get(&key)
                .is_none_or(|t| now.duration_since(*t) >= STATUS_INTERVAL);
        if due {
            let first = !st.statuses_printed.contains_key(&key);
            st.statuses_printed.insert(key.clone(), now);
            // The first sighting is usually "0B": wait for real progress.
            if !first {
                self.line(&s.vertex.clone(), &running_status(s));
            }
        }
        let st = self.state(&s.vertex);
        if done && !seen_done {
            st.statuses_done.insert(key, true);
            self.line(&s.vertex.clone(), &finished_status(s));
        }
    }

    /// Prints a vertex's complete log lines with the seconds since it
    /// started, keeping the last [`LOG_TAIL`] for the error report; the
    /// unfinished end of a chunk waits for the next chunk of its stream.
    fn log(&mut self, log: &VertexLog) {
        let st = self.state(&log.vertex);
        let started = st.started;
        let lines = st.partial.entry(log.stream).or_default().push(&log.msg);
        let offset = match (started, log.timestamp) {
            (Some(a), Some(b)) => seconds_between(&a, &b),
            _ => 0.0,
        };
        for text in lines {
            let st = self.state(&log.vertex);
            st.tail.push_back(text.clone());
            if st.tail.len() > LOG_TAIL {
                st.tail.pop_front();
            }
            self.line(&log.vertex.clone(), &format!("{offset:.3} {text}"));
        }
    }

    fn finish_if_done(&mut self, digest: &str) {
        let Some(st) = self.vertices.get_mut(digest) else {
            return;
        };
        if st.finished || (st.completed.is_none() && st.error.is_empty()) {
            return;
        }
        st.finished = true;
        // Flush partial log lines so the tail is complete.
        for (_, mut buf) in st.partial.drain() {
            st.tail.extend(buf.flush());
        }
        let text = if !st.error.is_empty() {
            if st.error.ends_with("context canceled") {
                "CANCELED".to_owned()
            } else {
                // BuildKit goes on without a cache it cannot import (the
                // first build with `cache: true` never finds one), so such a
                // vertex is never the step that failed the build.
                if self.failed.is_none() && !is_cache_import(&st.name) {
                    self.failed = Some(digest.to_owned());
                }
                format!("ERROR: {}", st.error)
            }
        } else if st.cached {
            "CACHED".to_owned()
        } else {
            match (st.started, st.completed) {
                (Some(a), Some(b)) => format!("DONE {:.1}s", seconds_between(&a, &b)),
                _ => "DONE".to_owned(),
            }
        };
        self.line(digest, &text);
    }

    /// Whether the daemon is pushing now: a `pushing …` status (`pushing
    /// layers`, `pushing manifest for …`) has started and not finished.
    /// BuildKit reports no bytes while it pushes, so this is all the stream
    /// says about a push.
    pub fn pushing(&self) -> bool {
        self.vertices.values().any(|v| {
            v.statuses_printed.keys().any(|id| {
                id.starts_with("pushing ") && !v.statuses_done.get(id).copied().unwrap_or(false)
            })
        })
    }

    /// Counts and the failing step, for the caller's report.
    pub fn summary(&self) -> Summary {
        let total_steps = self
            .vertices
            .values()
            .filter(|v| v.completed.is_some())
            .count();
        let cached_steps = self
            .vertices
            .values()
            .filter(|v| v.completed.is_some() && v.cached)
            .count();
        let failed = self
            .failed
            .as_ref()
            .and_then(|d| self.vertices.get(d))
            .map(|v| FailedStep {
                name: crate::text::escape_line(&v.name).into_owned(),
                error: crate::text::escape_lines(&v.error).into_owned(),
                logs: v
                    .tail
                    .iter()
                    .map(|l| crate::text::escape_line_keep_tabs(l).into_owned())
                    .collect(),
            });
        Summary {
            total_steps,
            cached_steps,
            failed,
        }
    }

    /// Re-prints the failing step's last log lines (after other vertices'
    /// output may have scrolled them away).
    pub fn print_failure(&mut self) {
        if let Some(failed) = self.summary().failed {
            let _ = writeln!(self.out, "\n------\n > {}:", failed.name);
            for line in &failed.logs {
                let _ = writeln!(self.out, "   {line}");
            }
            let _ = writeln!(self.out, "------\nERROR: {}", failed.error);
            let _ = self.out.flush();
        }
    }
}

/// A running status: its id and how far it got.
fn running_status(s: &VertexStatus) -> String {
    let mut text = s.id.clone();
    if s.total > 0 {
        text.push_str(&format!(
            " {} / {}",
            human_bytes(s.current),
            human_bytes(s.total)
        ));
    } else {
        text.push_str(&format!(" {}", human_bytes(s.current)));
    }
    text
}

/// A finished status, as buildctl prints it: the size when known, the
/// time it took, then `done`.
fn finished_status(s: &VertexStatus) -> String {
    let mut text = s.id.clone();
    if s.total > 0 {
        text.push_str(&format!(
            " {} / {}",
            human_bytes(s.current),
            human_bytes(s.total)
        ));
    } else if s.current > 0 {
        text.push_str(&format!(" {}", human_bytes(s.current)));
    }
    if let (Some(a), Some(b)) = (s.started, s.completed) {
        text.push_str(&format!(" {:.1}s", seconds_between(&a, &b)));
    }
    text.push_str(" done");
    text
}

/// The longest log line printed whole: past it, a line is cut and the rest
/// of it (up to its newline) is counted, not printed, so that one endless
/// line (a binary written to stdout) neither floods the log nor holds back
/// the lines after it.
const LINE_CAP: usize = 16 << 10;

/// One log stream's unfinished line.
#[derive(Debug, Default)]
struct LineBuffer {
    pending: Vec<u8>,
    /// Bytes of the current line dropped after it was cut at [`LINE_CAP`].
    dropped: Option<u64>,
}

impl LineBuffer {
    /// Adds a chunk and returns the lines it completes, escaped for the log:
    /// whole lines, a line cut at [`LINE_CAP`] (marked), and after a cut
    /// line's newline a note of how much of it was not shown.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let newline = rest.iter().position(|b| *b == b'\n');
            let (part, ended) = match newline {
                Some(pos) => (&rest[..pos], true),
                None => (rest, false),
            };
            rest = &rest[part.len() + usize::from(ended)..];
            if let Some(dropped) = self.dropped.as_mut() {
                *dropped += part.len() as u64;
                if ended {
                    lines.push(format!(
                        "[{} more of that line not shown]",
                        human_bytes(i64::try_from(*dropped).unwrap_or(i64::MAX))
                    ));
                    self.dropped = None;
                }
                continue;
            }
            let room = LINE_CAP - self.pending.len();
            if part.len() > room {
                let cut = char_boundary(part, room);
                self.pending.extend_from_slice(&part[..cut]);
                let mut text = split_redraws(&std::mem::take(&mut self.pending));
                if let Some(last) = text.last_mut() {
                    last.push_str(" [line cut at 16 KiB]");
                }
                lines.extend(text);
                self.dropped = Some((part.len() - cut) as u64);
                if ended {
                    lines.push(format!(
                        "[{} more of that line not shown]",
                        human_bytes((part.len() - cut) as i64)
                    ));
                    self.dropped = None;
                }
                continue;
            }
            self.pending.extend_from_slice(part);
            if ended {
                lines.extend(split_redraws(&std::mem::take(&mut self.pending)));
            }
        }
        lines
    }

    /// The unfinished line, when the stream ends without its newline.
    fn flush(&mut self) -> Vec<String> {
        self.dropped = None;
        split_redraws(&std::mem::take(&mut self.pending))
    }
}

/// Where to cut `bytes` at most `max` bytes in without splitting a UTF-8
/// character (a cut inside one would print a replacement character).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    while cut > 0 && cut < bytes.len() && (bytes[cut] & 0xC0) == 0x80 && max - cut < 3 {
        cut -= 1;
    }
    cut
}

/// One line's text, escaped for the log: a carriage return redraws a
/// terminal line (progress bars), and in a plain log each redraw is a line
/// of its own.
fn split_redraws(line: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(line)
        .split('\r')
        .filter(|part| !part.is_empty())
        .map(|part| crate::text::escape_line_keep_tabs(part).into_owned())
        .collect()
}

fn seconds_between(a: &Timestamp, b: &Timestamp) -> f64 {
    // Clocks of different daemon components may disagree slightly.
    ((b.seconds - a.seconds) as f64 + f64::from(b.nanos - a.nanos) / 1e9).max(0.0)
}

/// Sizes like buildkit's progress (`12.3MB`, decimal units).
fn human_bytes(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.2}{}", units[unit])
    }
}

/// The vertex BuildKit names for a registry cache import.
fn is_cache_import(name: &str) -> bool {
    name.starts_with("importing cache manifest from")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::proto::moby::buildkit::v1::{Vertex, VertexLog, VertexStatus};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn ts(s: i64, ms: i32) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: s,
            nanos: ms * 1_000_000,
        })
    }

    fn vertex(
        d: &str,
        name: &str,
        started: Option<Timestamp>,
        completed: Option<Timestamp>,
    ) -> Vertex {
        Vertex {
            digest: d.into(),
            name: name.into(),
            started,
            completed,
            ..Vertex::default()
        }
    }

    #[test]
    fn a_missing_cache_is_not_the_failed_step() {
        let mut p = Printer::new(Box::new(Sink::default()));
        let mut import = vertex(
            "i",
            "importing cache manifest from r/app:buildcache",
            ts(1, 0),
            ts(1, 1),
        );
        import.error = "failed to configure registry cache importer: not found".into();
        let mut push = vertex("e", "exporting to image", ts(2, 0), ts(3, 0));
        push.error = "failed to push r/app".into();
        p.update(&StatusResponse {
            vertexes: vec![import],
            ..Default::default()
        });
        p.update(&StatusResponse {
            vertexes: vec![push],
            ..Default::default()
        });
        let failed = p.summary().failed.expect("a failed step");
        assert_eq!(failed.name, "exporting to image");
        assert_eq!(failed.error, "failed to push r/app");
    }

    #[test]
    fn renders_plain_progress_and_failure() {
        let sink = Sink::default();
        let mut p = Printer::new(Box::new(sink.clone()));
        p.update(&StatusResponse {
            vertexes: vec![vertex(
                "a",
                "[internal] load build definition from Dockerfile",
                ts(10, 0),
                None,
            )],
            ..Default::default()
        });
        p.update(&StatusResponse {
            vertexes: vec![vertex(
                "a",
                "[internal] load build definition from Dockerfile",
                ts(10, 0),
                ts(10, 300),
            )],
            statuses: vec![VertexStatus {
                id: "transferring dockerfile".into(),
                vertex: "a".into(),
                current: 1234,
                started: ts(10, 0),
                completed: ts(10, 100),
                ..Default::default()
            }],
            ..Default::default()
        });
        let mut cached = vertex("b", "[1/2] FROM base", ts(11, 0), ts(11, 0));
        cached.cached = true;
        p.update(&StatusResponse {
            vertexes: vec![cached, vertex("c", "[2/2] RUN false", ts(12, 0), None)],
            logs: vec![VertexLog {
                vertex: "c".into(),
                timestamp: ts(12, 500),
                stream: 2,
                msg: b"line one\nline tw".to_vec().into(),
            }],
            ..Default::default()
        });
        let mut failed = vertex("c", "[2/2] RUN false", ts(12, 0), ts(13, 0));
        failed.error =
            "process \"/bin/sh -c false\" did not complete successfully: exit code: 1".into();
        p.update(&StatusResponse {
            vertexes: vec![failed],
            logs: vec![VertexLog {
                vertex: "c".into(),
                timestamp: ts(12, 600),
                stream: 2,
                msg: b"o\n".to_vec().into(),
            }],
            ..Default::default()
        });
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
        assert!(
            text.contains("#1 [internal] load build definition from Dockerfile\n"),
            "{text}"
        );
        assert!(
            text.contains("#1 transferring dockerfile 1.23kB 0.1s done\n"),
            "{text}"
        );
        assert!(text.contains("#1 DONE 0.3s\n"), "{text}");
        assert!(text.contains("#2 CACHED\n"), "{text}");
        assert!(text.contains("#3 0.500 line one\n"), "{text}");
        assert!(text.contains("#3 ERROR: process"), "{text}");
        let summary = p.summary();
        assert_eq!((summary.total_steps, summary.cached_steps), (3, 1));
        let failed = summary.failed.expect("failed step");
        assert_eq!(failed.name, "[2/2] RUN false");
        assert_eq!(failed.logs, ["line one", "line two"]);
    }

    #[test]
    fn canceled_is_not_a_failure() {
        let mut p = Printer::new(Box::new(Sink::default()));
        let mut v = vertex("x", "RUN sleep", ts(1, 0), ts(2, 0));
        v.error = "context canceled".into();
        p.update(&StatusResponse {
            vertexes: vec![v],
            ..Default::default()
        });
        assert!(p.summary().failed.is_none());
    }

    #[test]
    fn an_endless_line_is_cut_and_later_progress_and_the_failing_tail_survive() {
        let sink = Sink::default();
        let mut p = Printer::new(Box::new(sink.clone()));
        p.update(&StatusResponse {
            vertexes: vec![vertex("a", "[1/2] RUN cat /dev/zero", ts(1, 0), None)],
            ..Default::default()
        });
        // 64 MiB without a newline, in BuildKit-sized chunks; before, each
        // chunk rescanned the whole buffer and nothing was printed.
        let chunk = vec![b'x'; 32 << 10];
        let started = std::time::Instant::now();
        for _ in 0..2048 {
            p.update(&StatusResponse {
                logs: vec![VertexLog {
                    vertex: "a".into(),
                    timestamp: ts(1, 500),
                    stream: 1,
                    msg: chunk.clone().into(),
                }],
                ..Default::default()
            });
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let mut failed = vertex("b", "[2/2] RUN false", ts(2, 0), ts(3, 0));
        failed.error = "exit code: 1".into();
        p.update(&StatusResponse {
            logs: vec![
                VertexLog {
                    vertex: "a".into(),
                    timestamp: ts(1, 600),
                    stream: 1,
                    msg: b"end\nnext line\n".to_vec().into(),
                },
                VertexLog {
                    vertex: "b".into(),
                    timestamp: ts(2, 100),
                    stream: 2,
                    msg: b"the last words".to_vec().into(),
                },
            ],
            vertexes: vec![failed],
            ..Default::default()
        });
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.len() < 64 << 10, "{} bytes printed", text.len());
        let cut = format!("#1 0.500 {} [line cut at 16 KiB]\n", "x".repeat(16 << 10));
        assert!(text.contains(&cut), "{}", &text[..200]);
        assert!(
            text.contains("#1 0.600 [67.09MB more of that line not shown]\n"),
            "{}",
            &text[text.len().saturating_sub(600)..]
        );
        assert!(text.contains("#1 0.600 next line\n"));
        let failed = p.summary().failed.expect("the failing step");
        assert_eq!(failed.name, "[2/2] RUN false");
        assert_eq!(failed.logs, ["the last words"]);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut buf = LineBuffer::default();
        let mut line = vec![b'a'; LINE_CAP - 1];
        line.extend_from_slice("é and more".as_bytes());
        line.push(b'\n');
        let lines = buf.push(&line);
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert!(lines[0].ends_with("a [line cut at 16 KiB]"));
        assert!(!lines[0].contains('\u{fffd}'));
        assert_eq!(lines[1], "[11B more of that line not shown]");
    }

    #[test]
    fn human_bytes_like_buildkit() {
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(52_428_800), "52.43MB");
    }
}
