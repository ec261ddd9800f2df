//! Access-log tailer: follows a file like `tail -F` and turns each line into
//! one request in the second of the log's own timestamp.
//!
//! [`Follower`] owns the file state and is synchronous: open, read what was
//! appended, notice rotation (the path now names another inode: the old file
//! is read to its end first) and truncation (the file got shorter than what
//! was read: start over). The async task only paces it. Lines longer than
//! the configured bound are dropped and counted, never buffered whole.

pub mod format;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::ingest::{DropReason, Sink};
use crate::series::{Observation, StreamId};
use format::{LogFormat, LogLineError};

/// Where a log is first read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

/// Read at most this much per poll so one huge backlog cannot starve other tasks.
const READ_BUDGET: usize = 4 << 20;

/// What a poll found, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollOutcome {
    pub lines: usize,
    pub opened: bool,
    pub rotated: bool,
    pub truncated: bool,
    pub missing: bool,
}

pub struct Follower {
    path: PathBuf,
    max_line_bytes: usize,
    start_at: StartAt,
    file: Option<File>,
    identity: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes until the next newline.
    skipping: bool,
    /// The first open honours `start_at`; files that appear later are read whole.
    first_open_done: bool,
    chunk: Vec<u8>,
}

impl Follower {
    pub fn new(path: impl Into<PathBuf>, start_at: StartAt, max_line_bytes: usize) -> Self {
        Self {
            path: path.into(),
            max_line_bytes,
            start_at,
            file: None,
            identity: None,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            first_open_done: false,
            chunk: vec![0; 64 * 1024],
        }
    }

    /// Opens the file now, if it exists, so that `start_at = "end"` means the
    /// end at start-up rather than at the first poll.
    pub fn open_at_start(&mut self) -> io::Result<PollOutcome> {
        let mut out = PollOutcome::default();
        if !self.open(&mut out)? {
            self.first_open_done = true;
            out.missing = true;
        }
        Ok(out)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads everything appended since the last poll. `on_line` gets each
    /// complete line; `on_drop` each line dropped for its length.
    pub fn poll(
        &mut self,
        mut on_line: impl FnMut(&[u8]),
        mut on_drop: impl FnMut(DropReason),
    ) -> io::Result<PollOutcome> {
        let mut out = PollOutcome::default();
        if self.file.is_none() && !self.open(&mut out)? {
            // A file that appears after start-up is new: read it whole.
            self.first_open_done = true;
            out.missing = true;
            return Ok(out);
        }
        // Truncated in place (copytruncate, `> file`)?
        if let Some(f) = &self.file {
            if f.metadata()?.len() < self.offset {
                out.truncated = true;
                self.restart_at(0)?;
            }
        }
        out.lines += self.read_appended(&mut on_line, &mut on_drop)?;
        // Rotated (the path names another file now, or none)?
        match std::fs::metadata(&self.path) {
            Ok(meta) if Some((meta.dev(), meta.ino())) != self.identity => {
                // The old file was read to its end above; a partial last line is complete now.
                self.flush_partial(&mut on_line);
                out.rotated = true;
                self.file = None;
                if self.open(&mut out)? {
                    out.lines += self.read_appended(&mut on_line, &mut on_drop)?;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.missing = true,
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    fn open(&mut self, out: &mut PollOutcome) -> io::Result<bool> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        self.identity = Some((meta.dev(), meta.ino()));
        self.offset = if !self.first_open_done && self.start_at == StartAt::End {
            meta.len()
        } else {
            0
        };
        self.first_open_done = true;
        file.seek(SeekFrom::Start(self.offset))?;
        self.file = Some(file);
        self.partial.clear();
        self.skipping = false;
        out.opened = true;
        Ok(true)
    }

    fn restart_at(&mut self, offset: u64) -> io::Result<()> {
        if let Some(f) = &mut self.file {
            f.seek(SeekFrom::Start(offset))?;
        }
        self.offset = offset;
        self.partial.clear();
        self.skipping = false;
        Ok(())
    }

    fn flush_partial(&mut self, on_line: &mut impl FnMut(&[u8])) {
        if !self.partial.is_empty() && !self.skipping {
            on_line(&self.partial);
        }
        self.partial.clear();
        self.skipping = false;
    }

    fn read_appended(
        &mut self,
        on_line: &mut impl FnMut(&[u8]),
        on_drop: &mut impl FnMut(DropReason),
    ) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let mut lines = 0;
        let mut budget = READ_BUDGET;
        while budget > 0 {
            let n = file.read(&mut self.chunk)?;
            if n == 0 {
                break;
            }
            budget = budget.saturating_sub(n);
            self.offset += n as u64;
            let mut data = &self.chunk[..n];
            while let Some(nl) = memchr::memchr(b'\n', data) {
                let piece = &data[..nl];
                data = &data[nl + 1..];
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                let line: &[u8] = if self.partial.is_empty() {
                    piece
                } else {
                    self.partial.extend_from_slice(piece);
                    &self.partial
                };
                if line.len() > self.max_line_bytes {
                    on_drop(DropReason::LineTooLong);
                } else {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        on_line(line);
                        lines += 1;
                    }
                }
                self.partial.clear();
            }
            if !data.is_empty() && !self.skipping {
                if self.partial.len() + data.len() > self.max_line_bytes {
                    on_drop(DropReason::LineTooLong);
                    self.partial.clear();
                    self.skipping = true;
                } else {
                    self.partial.extend_from_slice(data);
                }
            }
        }
        Ok(lines)
    }
}

/// Turns one log line into an observation.
pub fn ingest_line(line: &[u8], format: &LogFormat, stream: StreamId, sink: &Sink) {
    match format.parse(line) {
        Ok(rec) => {
            let obs = match rec.latency_ms {
                Some(ms) => Observation::Latency { count: 1.0, ms },
                None => Observation::Count(1.0),
            };
            if sink.observe(stream, rec.second, obs) {
                sink.counters.accept();
            }
        }
        Err(e) => sink.counters.dropped(match e {
            LogLineError::Mismatch => DropReason::FormatMismatch,
            LogLineError::BadTime => DropReason::BadTime,
            LogLineError::BadNumber => DropReason::BadNumber,
            LogLineError::NotJson => DropReason::NotJson,
        }),
    }
}

/// Polls the file every `poll_interval` until `shutdown`.
pub async fn run(
    mut follower: Follower,
    format: LogFormat,
    stream: StreamId,
    poll_interval: std::time::Duration,
    sink: Sink,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_missing = false;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let counters = sink.counters.clone();
        let result = follower.poll(
            |line| ingest_line(line, &format, stream, &sink),
            |r| counters.dropped(r),
        );
        match result {
            Ok(out) => {
                last_error = None;
                sink.counters.set_up(!out.missing);
                if out.missing && !was_missing {
                    tracing::warn!(path = %follower.path().display(), "Access log is missing; waiting for it to appear.");
                }
                if out.opened && !out.missing {
                    tracing::info!(path = %follower.path().display(), rotated = out.rotated, "Following access log.");
                }
                if out.truncated {
                    tracing::info!(path = %follower.path().display(), "Access log was truncated; reading from the start.");
                }
                was_missing = out.missing;
            }
            Err(e) => {
                sink.counters.set_up(false);
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(path = %follower.path().display(), error = %msg, "Cannot read access log; retrying.");
                }
                last_error = Some(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests;
