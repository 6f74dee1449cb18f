//! The journal as one more sink of the stream: the events the journal
//! keeps are written as its own typed lines ([`journal::Event`], whose
//! on-disk format is the journal's alone), so that a producer emits each
//! happening once and the journal and the renderers consume the same event.
//!
//! What it keeps: each step's start, end (outcome and error) and
//! cancellation, the notes marked `kept`, what a load did on each node and
//! a push with the registry (a `delivery` each), a push's retries (as
//! notes), every [`Event::Recorded`] fact as it comes, and the monitor's
//! samples ([`Event::Sampled`], into `samples.jsonl`). Bytes moving,
//! inventories and blobs are for the renderers only.
//!
//! A journal that stops taking writes does not stop the command: the first
//! failure is said once, as a note to the sink that shows them.

use super::{Event, Sink};
use crate::deliver::NodeReport;
use crate::journal::{self, EventBody, Journal};
use crate::push::PushReport;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Writes the stream's events into a run's journal.
pub struct Recording {
    journal: Arc<Journal>,
    /// Where a failed write is said.
    warn: Option<Arc<dyn Sink>>,
    warned: AtomicBool,
}

impl Recording {
    pub fn new(journal: Arc<Journal>, warn: Option<Arc<dyn Sink>>) -> Recording {
        Recording {
            journal,
            warn,
            warned: AtomicBool::new(false),
        }
    }
}

impl Sink for Recording {
    fn event(&self, event: &Event<'_>) {
        let written = match event {
            Event::Recorded(fact) => self.journal.record(fact),
            Event::Sampled(sample) => self.journal.sample(sample),
            other => match kept(other) {
                Some(line) => self.journal.record(&line),
                None => return,
            },
        };
        if let Err(error) = written
            && !self.warned.swap(true, Ordering::Relaxed)
            && let Some(warn) = &self.warn
        {
            warn.event(&Event::Note {
                step: None,
                message: &format!("warning: {error}"),
                kept: false,
            });
        }
    }
}

/// The journal's line for an event it keeps.
fn kept(event: &Event<'_>) -> Option<journal::Event> {
    Some(match *event {
        Event::StepStarted { step } => journal::Event::step_start(step),
        Event::StepFinished {
            step,
            outcome,
            error,
            ..
        } => journal::Event::step_end(step, outcome, error.map(str::to_string)),
        Event::StepCancelled { step, because } => journal::Event::step_cancelled(step, because),
        Event::Note {
            step,
            message,
            kept: true,
        } => journal::Event::note(step, message),
        Event::NodeLoaded {
            step: Some(step),
            report,
        } => node_delivery(step, report),
        Event::PushRetry { step, retry, .. } => {
            journal::Event::note(step, format!("retry: {retry}"))
        }
        Event::Pushed {
            step: Some(step),
            registry,
            report,
        } => journal::Event::in_step(
            step,
            registry_delivery(&report.image, registry, Ok(report), report.duration_ms),
        ),
        Event::PushFailed {
            step: Some(step),
            image,
            registry,
            error,
            duration_ms,
        } => journal::Event::in_step(
            step,
            registry_delivery(image, registry, Err(error), duration_ms),
        ),
        _ => return None,
    })
}

/// The journal's record of what a load did on one node (`deliver/<image>`
/// in `up`, `load/<image>` in `load`), with a failure's facts; public for
/// tests that write a journal as a run would.
pub fn node_delivery(step: &str, report: &NodeReport) -> journal::Event {
    journal::Event::in_step(
        step,
        EventBody::Delivery {
            image: report.image.clone(),
            node: report.node.clone(),
            path: report.path.to_string(),
            result: report.result.to_string(),
            bytes_sent: report.bytes_sent,
            blobs_sent: report.blobs_sent,
            blobs_skipped: report.blobs_skipped,
            duration_ms: report.duration_ms,
            error: report.error.clone(),
            pushed: None,
            digest: None,
            failure: report.failure.clone().map(Box::new),
        },
    )
}

/// The journal's record of what a push to a registry (`registry`, its
/// `host[:port]`) did with one image: its report, or why it failed.
fn registry_delivery(
    image: &str,
    registry: &str,
    outcome: Result<&PushReport, &str>,
    duration_ms: u64,
) -> EventBody {
    let (result, report, error) = match outcome {
        Ok(report) if report.bytes_uploaded > 0 => ("pushed", Some(report), None),
        Ok(report) => ("already present", Some(report), None),
        Err(error) => ("failed", None, Some(error.to_string())),
    };
    EventBody::Delivery {
        image: image.to_string(),
        node: registry.to_string(),
        path: "registry".to_string(),
        result: result.to_string(),
        bytes_sent: report.map_or(0, |r| r.bytes_uploaded),
        blobs_sent: report.map_or(0, |r| r.blobs_uploaded),
        // Mounted from another repository: there, so not sent.
        blobs_skipped: report.map_or(0, |r| r.blobs_skipped + r.blobs_mounted),
        duration_ms,
        error,
        pushed: report.map(|r| r.pushed.clone()),
        digest: report.map(|r| r.digest.to_string()),
        failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Digest;
    use crate::deliver::{DeliveryPath, NodeResult};
    use crate::events::Events;
    use crate::push::Retry;

    /// A push's and a load's events as the journal keeps them: each node's
    /// and each push's report a `delivery` of its step, a retry a note;
    /// bytes moving, notes shown only and a load outside a step not at all.
    #[test]
    fn the_journal_keeps_deliveries_pushes_and_retries_of_the_stream() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-recording-")
            .tempdir()
            .unwrap();
        let root = scratch.path().to_path_buf();
        let journal = Arc::new(Journal::create_for_command(&root, "push", None, None).unwrap());
        let events = Events::new(vec![Arc::new(Recording::new(journal.clone(), None))]);
        let node = NodeReport {
            node: "e2e-worker".to_string(),
            image: "app:1".to_string(),
            reference: "docker.io/library/app:1".to_string(),
            path: DeliveryPath::Save,
            result: NodeResult::Loaded,
            bytes_sent: 96,
            blobs_sent: 3,
            blobs_skipped: 1,
            duration_ms: 42,
            error: None,
            failure: None,
        };
        let retry = Retry {
            request: "PATCH /v2/ci/api/blobs/uploads/".to_string(),
            attempt: 1,
            attempts: 5,
            error: "Connection reset by peer".to_string(),
            wait_ms: 250,
        };
        let pushed = PushReport {
            image: "api:1".to_string(),
            pushed: "127.0.0.1:5000/ci/api:1".to_string(),
            digest: Digest::of(b"manifest"),
            config: Digest::of(b"config"),
            blobs_uploaded: 2,
            blobs_skipped: 1,
            blobs_mounted: 0,
            bytes_uploaded: 12,
            read_source: true,
            retries: vec![retry.clone()],
            duration_ms: 31,
        };
        let (load, push) = (Some("load/app:1"), Some("push/api:1"));
        for event in [
            Event::NodeLoaded {
                step: None,
                report: &node,
            },
            Event::NodeLoaded {
                step: load,
                report: &node,
            },
            Event::LoadStreaming {
                step: load,
                image: "app:1",
                read: 9,
                sent: &[],
            },
            Event::Note {
                step: push,
                message: "shown only",
                kept: false,
            },
            Event::PushRetry {
                step: push,
                image: "api:1",
                retry: &retry,
            },
            Event::Pushed {
                step: push,
                registry: "127.0.0.1:5000",
                report: &pushed,
            },
            Event::PushFailed {
                step: Some("push/db:1"),
                image: "db:1",
                registry: "127.0.0.1:5000",
                error: "refused",
                duration_ms: 5,
            },
        ] {
            events.emit(&event);
        }
        let record = Journal::open(journal.dir()).unwrap();
        let kept: Vec<(Option<&str>, &EventBody)> = record
            .events
            .iter()
            .skip(1) // run-start
            .map(|e| (e.step.as_deref(), &e.body))
            .collect();
        assert_eq!(kept.len(), 4, "{kept:#?}");
        assert!(matches!(kept[0], (Some("load/app:1"), EventBody::Delivery {
            node, result, bytes_sent: 96, duration_ms: 42, .. }) if node == "e2e-worker" && result == "loaded"));
        assert!(
            matches!(kept[1], (Some("push/api:1"), EventBody::Note { message })
            if message == &format!("retry: {retry}"))
        );
        assert!(matches!(kept[2], (Some("push/api:1"), EventBody::Delivery {
            node, result, pushed: Some(to), duration_ms: 31, .. })
            if node == "127.0.0.1:5000" && result == "pushed" && to == "127.0.0.1:5000/ci/api:1"));
        assert!(matches!(kept[3], (Some("push/db:1"), EventBody::Delivery {
            result, error: Some(error), .. }) if result == "failed" && error == "refused"));
    }

    #[test]
    fn a_push_is_a_registry_delivery_with_its_reference_and_digest() {
        let digest = Digest::of(b"manifest");
        let report = PushReport {
            image: "app:1".to_string(),
            pushed: "127.0.0.1:5000/e2e/app:1".to_string(),
            digest,
            config: Digest::of(b"config"),
            blobs_uploaded: 0,
            blobs_skipped: 2,
            blobs_mounted: 1,
            bytes_uploaded: 0,
            read_source: false,
            retries: Vec::new(),
            duration_ms: 5,
        };
        match registry_delivery("app:1", "127.0.0.1:5000", Ok(&report), 7) {
            EventBody::Delivery {
                node,
                path,
                result,
                blobs_sent,
                blobs_skipped,
                pushed,
                digest: recorded,
                duration_ms,
                ..
            } => {
                assert_eq!(
                    (node.as_str(), path.as_str()),
                    ("127.0.0.1:5000", "registry")
                );
                // Nothing uploaded: the registry had it; a mount sends nothing.
                assert_eq!(result, "already present");
                assert_eq!((blobs_sent, blobs_skipped, duration_ms), (0, 3, 7));
                assert_eq!(pushed.as_deref(), Some("127.0.0.1:5000/e2e/app:1"));
                assert_eq!(recorded, Some(digest.to_string()));
            }
            other => panic!("{other:?}"),
        }
        let uploaded = PushReport {
            blobs_uploaded: 1,
            bytes_uploaded: 10,
            ..report
        };
        assert!(matches!(
            registry_delivery("app:1", "r", Ok(&uploaded), 7),
            EventBody::Delivery { result, bytes_sent: 10, .. } if result == "pushed"
        ));
        assert!(matches!(
            registry_delivery("app:1", "r", Err("refused"), 7),
            EventBody::Delivery { result, error: Some(error), pushed: None, digest: None, .. }
                if result == "failed" && error == "refused"
        ));
    }
}
