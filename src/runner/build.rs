//! Building one image with `<engine> build`: its context, Dockerfile, build
//! arguments, target and timeout; each attempt recorded in the journal as a
//! command, and a bounded retry when the engine fails with an error known
//! to be transient.

use super::progress::Reporter;
use crate::engine::EngineKind;
use crate::journal::{Event, Journal};
use crate::plan::Build;
use crate::process::{self, Ran, Spec};

/// How many times a build is tried when it fails with a transient error.
pub const ATTEMPTS: u32 = 3;

/// Texts of build failures that a second try fixes, and why. A retry for
/// anything else would only repeat the failure more slowly.
const TRANSIENT: &[(&str, &str)] = &[
    (
        "unknown version specified",
        "crun's race on a container's config (containers/crun, seen under podman build)",
    ),
    (
        "checking if cached image exists from a previous build: getting top layer info: layer not known",
        "buildah's cache lookup raced with an image removal (containers/buildah#5615, fixed upstream by ignoring it)",
    ),
    ("TLS handshake timeout", "a registry connection timed out"),
    (
        "connection reset by peer",
        "a registry connection was reset",
    ),
    ("i/o timeout", "a network read timed out"),
];

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "cannot run `{program} build` for {image}: {source} (is {program} installed and on PATH?)"
    )]
    Spawn {
        program: String,
        image: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "building {image} failed ({how}) after {attempts} attempt(s): {tail}\n  the whole output: {}; the build alone: `{command}`", log.display()
    )]
    Failed {
        image: String,
        how: String,
        attempts: u32,
        tail: String,
        command: String,
        log: std::path::PathBuf,
    },
}

/// The `<engine> build` command line for `image`.
pub fn argv(engine: EngineKind, image: &str, build: &Build) -> Vec<String> {
    let mut argv = vec![
        engine.name().to_string(),
        "build".to_string(),
        // A failed build leaves its intermediate containers behind
        // otherwise (docker's classic builder keeps them for debugging).
        "--force-rm".to_string(),
        "-t".to_string(),
        image.to_string(),
        "-f".to_string(),
        build.dockerfile.display().to_string(),
    ];
    for (key, value) in &build.args {
        argv.push("--build-arg".to_string());
        argv.push(format!("{key}={value}"));
    }
    if let Some(target) = &build.target {
        argv.push("--target".to_string());
        argv.push(target.clone());
    }
    argv.push(build.context.display().to_string());
    argv
}

/// The known transient failure `stderr` shows, if any: (text, why).
pub fn transient(stderr: &str) -> Option<(&'static str, &'static str)> {
    TRANSIENT
        .iter()
        .find(|(text, _)| stderr.contains(text))
        .copied()
}

/// Builds `image`, recording every attempt under `step`; retried while it
/// fails with a transient error, at most [`ATTEMPTS`] tries in all.
pub fn build(
    journal: &Journal,
    reporter: &dyn Reporter,
    step: &str,
    engine: EngineKind,
    image: &str,
    build: &Build,
) -> Result<Ran, BuildError> {
    let argv = argv(engine, image, build);
    with_retries(journal, reporter, step, image, &argv, build.timeout.get())
}

/// Runs a build command line until it succeeds, fails for a reason that is
/// not transient, or has been tried [`ATTEMPTS`] times.
fn with_retries(
    journal: &Journal,
    reporter: &dyn Reporter,
    step: &str,
    image: &str,
    argv: &[String],
    timeout: std::time::Duration,
) -> Result<Ran, BuildError> {
    let mut spec = Spec::new(argv, timeout);
    let log = journal
        .dir()
        .join("logs")
        .join(super::steps::file_name(step, "log"));
    spec.log = Some(log.clone());
    let mut attempt = 1;
    loop {
        let ran = process::supervise(&spec).map_err(|source| BuildError::Spawn {
            program: argv[0].clone(),
            image: image.to_string(),
            source,
        })?;
        reporter.record(&Event::command(
            step,
            argv.to_vec(),
            ran.exit,
            &ran.stderr_tail,
            ran.duration,
        ));
        if ran.success() {
            return Ok(ran);
        }
        let tail = ran.tail_text();
        match transient(&tail) {
            Some((text, why))
                if attempt < ATTEMPTS && ran.interrupted.is_none() && !ran.exit.timed_out =>
            {
                let message = format!(
                    "build of {image} failed with {text:?} ({why}), a known transient error: trying again, attempt {} of {ATTEMPTS}",
                    attempt + 1
                );
                reporter.note(Some(step), &message);
                attempt += 1;
            }
            _ => {
                return Err(BuildError::Failed {
                    image: image.to_string(),
                    how: ran.describe(timeout),
                    attempts: attempt,
                    tail,
                    command: shell_words(argv),
                    log,
                });
            }
        }
    }
}

pub use crate::process::shell_words;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[test]
    fn argv_has_dockerfile_args_target_and_context_last() {
        let build = Build {
            context: PathBuf::from("/src/app"),
            dockerfile: PathBuf::from("/src/app/Dockerfile.e2e"),
            args: BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x y".to_string()),
            ]),
            target: Some("runtime".to_string()),
            timeout: crate::plan::BUILD_TIMEOUT,
            memory: None,
        };
        assert_eq!(
            argv(EngineKind::Podman, "localhost/app:1", &build),
            [
                "podman",
                "build",
                "--force-rm",
                "-t",
                "localhost/app:1",
                "-f",
                "/src/app/Dockerfile.e2e",
                "--build-arg",
                "A=1",
                "--build-arg",
                "B=x y",
                "--target",
                "runtime",
                "/src/app"
            ]
        );
    }

    #[test]
    fn crun_unknown_version_is_transient_and_a_dockerfile_error_is_not() {
        let crun = "Error: OCI runtime error: crun: unknown version specified";
        assert_eq!(
            transient(crun).map(|t| t.0),
            Some("unknown version specified")
        );
        let race = "Error: checking if cached image exists from a previous build: getting top layer info: layer not known";
        assert!(transient(race).is_some());
        assert_eq!(
            transient("COPY failed: file not found in build context or excluded by .dockerignore"),
            None
        );
    }

    #[test]
    fn a_transient_failure_is_retried_and_recorded_and_another_is_not() {
        use crate::journal::{EventBody, Journal};
        let scratch = tempfile::Builder::new()
            .prefix("lm-build-")
            .tempdir()
            .unwrap();
        let root = scratch.path().to_path_buf();
        let plan = crate::plan::parse(
            "apiVersion: loadmaster/v1\ncluster:\n  name: e2e\ntest:\n  command: 'true'\n",
            &root.join("loadmaster.yaml"),
        )
        .unwrap();
        let journal = std::sync::Arc::new(Journal::create(&root, &plan).unwrap());
        std::fs::create_dir_all(journal.dir().join("logs")).unwrap();
        let marker = root.join("tried");
        // Fails like crun the first time, succeeds the second.
        let flaky = format!(
            "if [ -e {0} ]; then exit 0; fi; touch {0}; echo 'Error: crun: unknown version specified' >&2; exit 1",
            marker.display()
        );
        let argv = ["sh", "-c", &flaky].map(String::from);
        let timeout = std::time::Duration::from_secs(10);
        // The journal alone, as the run's stream has it.
        let reporter = crate::events::Events::new(vec![std::sync::Arc::new(
            crate::events::recording::Recording::new(journal.clone(), None),
        )]);
        let with_retries =
            |step, image, argv| with_retries(&journal, &reporter, step, image, argv, timeout);
        let ran = with_retries("build/a", "a:1", &argv).unwrap();
        assert!(ran.success());
        let broken = ["sh", "-c", "echo 'COPY failed: no such file' >&2; exit 1"].map(String::from);
        let error = with_retries("build/b", "b:1", &broken).unwrap_err();
        let record = Journal::open(journal.dir()).unwrap();
        let commands = |step: &str| {
            record
                .events
                .iter()
                .filter(|e| e.step.as_deref() == Some(step))
                .filter(|e| matches!(e.body, EventBody::Command { .. }))
                .count()
        };
        assert_eq!(commands("build/a"), 2);
        assert!(record.events.iter().any(|e| matches!(&e.body,
            EventBody::Note { message } if message.contains("known transient error") && message.contains("attempt 2 of 3"))));
        assert_eq!(commands("build/b"), 1);
        assert!(
            error
                .to_string()
                .contains("after 1 attempt(s): COPY failed"),
            "{error}"
        );
    }
}
