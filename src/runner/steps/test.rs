//! The test step: the plan's test command with `KUBECONFIG` and its
//! environment, its output streamed and kept in `artifacts/test.log`, its
//! exit code recorded, the artifacts it names copied into the run.

use super::{Failure, Kube, Recorder, StepError, failure_line};
use crate::plan::{CommandLine, Test};
use crate::process::Spec;
use std::path::Path;

/// The test step's context.
pub struct TestStep<'a> {
    pub test: &'a Test,
    pub kube: &'a Kube,
    pub recorder: &'a Recorder,
}

impl TestStep<'_> {
    /// Runs the test; the result, and its exit code when it ran.
    pub fn run(&self) -> (Result<(), Failure>, Option<i32>) {
        let test = self.test;
        let recorder = self.recorder;
        let mut exit = None;
        let result = recorder.step("test", || {
            let argv = match &test.command {
                CommandLine::Shell(line) => vec!["sh".to_string(), "-c".to_string(), line.clone()],
                CommandLine::Argv(argv) => argv.clone(),
            };
            let mut spec = Spec::new(&argv, test.timeout.get());
            spec.env = self.kube.env();
            spec.env
                .extend(test.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            spec.dir = Some(test.workdir.clone());
            spec.echo = Some(recorder.reporter.clone());
            spec.log = Some(recorder.journal.artifacts_dir().join("test.log"));
            let ran = recorder.command("test", &spec)?;
            exit = ran.exit.code.or(ran.exit.signal.map(|s| 128 + s));
            self.keep_artifacts();
            if ran.success() {
                Ok(())
            } else {
                Err(StepError::Failed {
                    message: format!("the test failed ({})", ran.describe(spec.timeout)),
                    output: format!(
                        "{}\nloadmaster: error: {}",
                        ran.tail_text(),
                        failure_line(&spec, &ran)
                    ),
                    node: None,
                    facts: None,
                })
            }
        });
        (result, exit)
    }

    /// Copies what the test left into the run's `artifacts/`, noting what
    /// is missing.
    fn keep_artifacts(&self) {
        let into = self.recorder.journal.artifacts_dir();
        let workdir = &self.test.workdir;
        for path in &self.test.artifacts {
            let relative = path.strip_prefix(workdir).unwrap_or(path);
            let target = into.join(relative.file_name().map_or(relative, Path::new));
            if let Err(error) = copy_tree(path, &target) {
                self.recorder.note(
                    Some("test"),
                    format!("artifact {} not kept: {error}", path.display()),
                );
            }
        }
    }
}

/// Copies a file, or a directory with everything in it.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}
