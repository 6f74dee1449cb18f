//! The executor: runs a [`graph::Scheduler`]'s steps, each on a thread of
//! its own as soon as the scheduler starts it (the process layer blocks, so
//! threads and a channel are all it takes), and records the graph: every
//! step's needs before the first starts, why each step waited (the
//! reasons the scheduler gave, each with when it held) just before it
//! starts, and every step cancelled with why.
//!
//! A step's body records its own journal step ([`Recorder::step`]); the
//! executor only decides when it runs. After a failure the scheduler's
//! policy says what is cancelled; a signal (SIGINT, SIGTERM) cancels
//! everything not started, while the process layer stops the children of
//! the steps that run, so that they end at once.

use super::graph::{Cancel, Scheduler, State, Wait};
use super::steps::{Failure, Recorder, StepError};
use crate::journal::{Event, GraphStep, Timestamp, WaitSpan};
use crate::process::signal;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

/// How often the executor looks for a signal while steps run.
const POLL: Duration = Duration::from_millis(100);

/// Runs every step of `scheduler` through `body` (given the step's index)
/// and returns the failures in the order they happened (empty: every step
/// succeeded). `disk` gives a step's disk demand that the graph left to be
/// measured, asked when what the step needs is done.
pub fn run(
    mut scheduler: Scheduler,
    recorder: &Recorder,
    disk: &dyn Fn(usize) -> u64,
    body: &(dyn Fn(usize) -> Result<(), Failure> + Sync),
) -> Vec<Failure> {
    let steps = scheduler.steps().to_vec();
    recorder.record(&Event::graph(
        steps
            .iter()
            .map(|step| GraphStep {
                id: step.id.clone(),
                needs: step.needs.iter().map(|&m| steps[m].id.clone()).collect(),
            })
            .collect(),
    ));
    let mut waits = Waits::new(steps.len());
    let mut failures = Vec::new();
    let mut interrupted = false;
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<(usize, Result<(), Failure>)>();
        // An interrupt cancels before a step that it stopped reports its
        // end, so that nothing is cancelled as if that step had failed.
        let mut on_signal = |scheduler: &mut Scheduler| {
            if !interrupted && let Some(signal) = signal::received() {
                interrupted = true;
                let cancelled = scheduler.interrupt();
                cancel(recorder, scheduler, cancelled, signal);
            }
        };
        loop {
            on_signal(&mut scheduler);
            scheduler.measure(&mut |n| disk(n));
            let now = Timestamp::now();
            for n in scheduler.start_ready() {
                let spans = waits.close(n, now);
                if !spans.is_empty() {
                    recorder.record(&Event::step_waited(&steps[n].id, spans));
                }
                let done = done.clone();
                let id = steps[n].id.clone();
                scope.spawn(move || {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(n)))
                        .unwrap_or_else(|_| {
                            Err((
                                id.clone(),
                                StepError::failed(format!(
                                    "step {id} panicked (a bug in loadmaster)"
                                )),
                            ))
                        });
                    // The receiver lives until every step has reported.
                    let _ = done.send((n, result));
                });
            }
            for n in 0..steps.len() {
                waits.observe(n, scheduler.waits(n), now);
            }
            if scheduler.is_done() {
                break;
            }
            match finished.recv_timeout(POLL) {
                Ok((n, result)) => {
                    on_signal(&mut scheduler);
                    let cancelled = scheduler.finished(n, result.is_ok());
                    cancel(recorder, &scheduler, cancelled, 0);
                    if let Err(failure) = result {
                        failures.push(failure);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    unreachable!("the executor holds a sender")
                }
            }
        }
    });
    failures
}

/// Records and shows the steps cancelled (`signal`: the one that
/// interrupted the run, for an interrupt).
fn cancel(recorder: &Recorder, scheduler: &Scheduler, cancelled: Vec<usize>, signal: i32) {
    let steps = scheduler.steps();
    for n in cancelled {
        let because = match scheduler.state(n) {
            State::Cancelled(Cancel::Depends(m)) => {
                format!("{} failed and it needs it", steps[*m].id)
            }
            State::Cancelled(Cancel::FailFast(m)) => format!(
                "fail fast after {} failed (--keep-going runs what does not need it)",
                steps[*m].id
            ),
            _ => format!("interrupted by signal {signal}"),
        };
        recorder
            .reporter
            .emit(&crate::events::Event::StepCancelled {
                step: &steps[n].id,
                because: &because,
            });
    }
}

/// The reasons each step waits for, from when they hold.
struct Waits {
    open: Vec<BTreeMap<Wait, Timestamp>>,
    spans: Vec<Vec<WaitSpan>>,
}

impl Waits {
    fn new(count: usize) -> Waits {
        Waits {
            open: vec![BTreeMap::new(); count],
            spans: vec![Vec::new(); count],
        }
    }

    /// Step `n` waits for `now_waiting` at `now`: reasons that no longer
    /// hold are closed, new ones opened.
    fn observe(&mut self, n: usize, now_waiting: Vec<Wait>, now: Timestamp) {
        let open = &mut self.open[n];
        let ended: Vec<Wait> = open
            .keys()
            .filter(|wait| !now_waiting.contains(wait))
            .cloned()
            .collect();
        for wait in ended {
            let from = open.remove(&wait).expect("an open wait");
            self.spans[n].push(WaitSpan {
                wait,
                from,
                until: now,
            });
        }
        for wait in now_waiting {
            open.entry(wait).or_insert(now);
        }
    }

    /// Step `n` starts at `now`: every reason is closed; its spans in the
    /// order they began.
    fn close(&mut self, n: usize, now: Timestamp) -> Vec<WaitSpan> {
        self.observe(n, Vec::new(), now);
        let mut spans = std::mem::take(&mut self.spans[n]);
        spans.retain(|span| span.until > span.from);
        spans.sort_by_key(|span| span.from);
        spans
    }
}
