//! The journal of a command without a plan (`load`, `push`, `doctor`): a
//! run directory under the same root as `up`'s, so that `runs`, `report`
//! and `triage` read any failed loadmaster command as they read `up`'s.
//! The journal is a sink of the command's event stream
//! ([`Events::recorded`]): the command emits its steps once, for its
//! renderer and its journal alike.
//!
//! Recording never fails the command it records: a journal that cannot be
//! created or written is said once on stderr, and the command goes on.

use crate::engine::EngineKind;
use crate::events::{Event, Events, Sink};
use crate::journal::{self, Journal, Outcome};
use std::path::Path;
use std::sync::Arc;

pub struct CommandJournal {
    /// The command's stream: `renderer`, and the journal when it could be
    /// created.
    pub events: Events,
}

impl CommandJournal {
    /// Starts the record of `command` under `root`, shown by `renderer`.
    pub fn start(
        root: &Path,
        command: &str,
        cluster: Option<&str>,
        engine: Option<EngineKind>,
        renderer: Arc<dyn Sink>,
    ) -> CommandJournal {
        let events = match Journal::create_for_command(root, command, cluster, engine) {
            Ok(journal) => Events::recorded(Arc::new(journal), renderer),
            Err(error) => {
                eprintln!("loadmaster: warning: {command} is not recorded: {error}");
                Events::new(vec![renderer])
            }
        };
        CommandJournal { events }
    }

    /// Ends the record with the command's outcome.
    pub fn finish(&self, result: Outcome) {
        self.events
            .emit(&Event::Recorded(&journal::Event::run_end(result)));
    }
}
