//! The watchdog of streamed children: a command whose stream stalls, or a
//! SIGINT/SIGTERM to loadmaster, ends it at once.
//!
//! A stream is idle only while we wait on it: a read of an engine's `save`
//! that returns nothing, a write to a node's `ctr import` that it does not
//! take. Waiting for the other side (a feed with nothing to write because
//! `save` is slow) is not the feed's stall, so the side that stalled is the
//! one named. A stream that crawls is stalled too: one whose waits add up
//! to the limit while it moves less than [`CRAWL_FLOOR`] (a node's import
//! starved of memory takes a few hundred bytes a second and would otherwise
//! never end). One thread checks every watched child a few times a second;
//! it kills the child's process group, which ends the blocked read or write
//! (EOF, broken pipe), and marks why, so that the caller's error says so.

use super::signal;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// How long a stream may wait for its other side before the command is
/// stopped, unless [`set_stall_limit`] says otherwise.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(300);

/// How often the watchdog looks.
const TICK: Duration = Duration::from_millis(100);

/// A stream that moves less than this while its waits add up to the stall
/// limit crawls, and is stopped as stalled: 4 MiB in the default 300 s of
/// waiting is 14 KiB/s, far below any engine or node that works.
pub const CRAWL_FLOOR: u64 = 4 << 20;

/// How a stall is said after what stalled ("took no input", "sent
/// nothing"): the same words for the error of the read or write and for
/// the engine command's error.
pub fn stall_words(limit: Duration) -> String {
    format!(
        "for {}s of waiting (under {} MiB in all counts as nothing)",
        limit.as_secs_f64(),
        CRAWL_FLOOR >> 20
    )
}

static STALL_LIMIT_MS: AtomicU64 = AtomicU64::new(DEFAULT_STALL_LIMIT.as_millis() as u64);

/// Sets the stall limit of every stream started from now on (`load
/// --stall-timeout`): a process-wide policy, as signal handling is.
pub fn set_stall_limit(limit: Duration) {
    STALL_LIMIT_MS.store(limit.as_millis().max(1) as u64, Ordering::SeqCst);
}

/// The stall limit streams get now.
pub fn stall_limit() -> Duration {
    Duration::from_millis(STALL_LIMIT_MS.load(Ordering::SeqCst))
}

/// Why the watchdog stopped a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// A read or a write waited longer than this.
    Stalled(Duration),
    /// loadmaster received this signal.
    Interrupted(i32),
}

/// One watched child: its process group, and since when a read or write
/// of its stream has been waiting.
#[derive(Debug)]
pub struct Watch {
    pgid: libc::pid_t,
    limit: Duration,
    /// Milliseconds since [`epoch`] at which the pending read or write
    /// began, plus one; 0 when none is pending.
    pending_since: AtomicU64,
    /// Milliseconds spent waiting in finished reads or writes since the
    /// stream last moved [`CRAWL_FLOOR`] bytes, and the bytes moved since.
    crawl_waited_ms: AtomicU64,
    crawl_moved: AtomicU64,
    stopped_by_signal: AtomicI32,
    stalled: AtomicBool,
}

impl Watch {
    /// Watches the process group `pgid` until the returned handle drops.
    /// Streamed commands start only before a signal (see [`refuse_after_signal`]).
    pub fn start(pgid: libc::pid_t, limit: Duration) -> Arc<Watch> {
        let watch = Arc::new(Watch {
            pgid,
            limit,
            pending_since: AtomicU64::new(0),
            crawl_waited_ms: AtomicU64::new(0),
            crawl_moved: AtomicU64::new(0),
            stopped_by_signal: AtomicI32::new(0),
            stalled: AtomicBool::new(false),
        });
        let mut watched = watchdog().lock().unwrap_or_else(|p| p.into_inner());
        watched.retain(|w| w.strong_count() > 0);
        watched.push(Arc::downgrade(&watch));
        watch
    }

    /// Runs one blocking read or write of the stream under watch; its
    /// result is the bytes it moved.
    pub fn waiting(
        &self,
        operation: impl FnOnce() -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let began = epoch().elapsed().as_millis() as u64;
        self.pending_since.store(began + 1, Ordering::SeqCst);
        let result = operation();
        let waited = (epoch().elapsed().as_millis() as u64).saturating_sub(began);
        let moved = *result.as_ref().unwrap_or(&0) as u64;
        if self.crawl_moved.fetch_add(moved, Ordering::SeqCst) + moved >= CRAWL_FLOOR {
            self.crawl_moved.store(0, Ordering::SeqCst);
            self.crawl_waited_ms.store(0, Ordering::SeqCst);
        } else {
            self.crawl_waited_ms.fetch_add(waited, Ordering::SeqCst);
        }
        self.pending_since.store(0, Ordering::SeqCst);
        result
    }

    /// Why the watchdog stopped the command, if it did.
    pub fn stopped(&self) -> Option<Stopped> {
        match self.stopped_by_signal.load(Ordering::SeqCst) {
            0 if self.stalled.load(Ordering::SeqCst) => Some(Stopped::Stalled(self.limit)),
            0 => None,
            signal => Some(Stopped::Interrupted(signal)),
        }
    }

    /// Looks once: stops the group if its stream stalled or a signal came.
    fn check(&self, now: Duration) {
        if self.stopped().is_some() {
            return;
        }
        if let Some(signal) = signal::received() {
            self.stopped_by_signal.store(signal, Ordering::SeqCst);
            super::kill_group(self.pgid, libc::SIGKILL);
            return;
        }
        let since = self.pending_since.load(Ordering::SeqCst);
        let pending = match since {
            0 => Duration::ZERO,
            since => now.saturating_sub(Duration::from_millis(since - 1)),
        };
        // The waits since the stream last moved CRAWL_FLOOR, this one
        // included: a single long wait is the plain stall.
        let crawled = Duration::from_millis(self.crawl_waited_ms.load(Ordering::SeqCst));
        if crawled + pending > self.limit {
            self.stalled.store(true, Ordering::SeqCst);
            super::kill_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// After a SIGINT or SIGTERM no streamed command starts: a stopped load
/// stops, instead of going on to its next image or node. Quick commands
/// ([`super::run`]) still run, for the cleanup that follows.
pub fn refuse_after_signal() -> std::io::Result<()> {
    match signal::received() {
        None => Ok(()),
        Some(signal) => Err(std::io::Error::other(format!(
            "not started: loadmaster received signal {signal}"
        ))),
    }
}

/// The instant pending times are measured from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The watched children, and the thread that looks at them (started with
/// the first).
fn watchdog() -> &'static Mutex<Vec<Weak<Watch>>> {
    static WATCHED: OnceLock<Mutex<Vec<Weak<Watch>>>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        epoch();
        thread::spawn(|| {
            loop {
                thread::sleep(TICK);
                let now = epoch().elapsed();
                let watched: Vec<Arc<Watch>> = {
                    let list = watchdog().lock().unwrap_or_else(|p| p.into_inner());
                    list.iter().filter_map(Weak::upgrade).collect()
                };
                for watch in watched {
                    watch.check(now);
                }
            }
        });
        Mutex::new(Vec::new())
    })
}
