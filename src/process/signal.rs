//! SIGINT and SIGTERM: noted, not acted on in the handler. The runner polls
//! [`received`] between steps and while it waits for a child, stops the
//! child, and ends the journal with `run-end interrupted`.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(signal: libc::c_int) {
    // Only an atomic store: anything more is not async-signal-safe.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the handlers; from then on SIGINT and SIGTERM no longer end the
/// process, the runner does.
pub fn install() {
    let handler = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: `note` only stores to an atomic, which is async-signal-safe;
    // installing a handler has no other precondition.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal that asked the run to stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}
