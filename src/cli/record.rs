//! The journal of a command without a plan (`load`, `push`, `doctor`): a
//! run directory under the same root as `up`'s, so that `runs`, `report`
//! and `triage` read any failed loadmaster command as they read `up`'s.
//!
//! Recording never fails the command it records: a journal that cannot be
//! written is said once on stderr, and the command goes on.

use crate::engine::EngineKind;
use crate::journal::{Event, Journal, Outcome};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct CommandJournal {
    journal: Option<Journal>,
    warned: AtomicBool,
}

impl CommandJournal {
    /// Starts the record of `command` under `root`.
    pub fn start(
        root: &Path,
        command: &str,
        cluster: Option<&str>,
        engine: Option<EngineKind>,
    ) -> CommandJournal {
        let journal = Journal::create_for_command(root, command, cluster, engine)
            .map_err(|error| eprintln!("loadmaster: warning: {command} is not recorded: {error}"))
            .ok();
        CommandJournal {
            journal,
            warned: AtomicBool::new(false),
        }
    }

    pub fn record(&self, event: &Event) {
        let Some(journal) = &self.journal else {
            return;
        };
        if let Err(error) = journal.record(event)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!("loadmaster: warning: {error}");
        }
    }

    /// Ends the record with the command's outcome.
    pub fn finish(&self, result: Outcome) {
        self.record(&Event::run_end(result));
    }
}
