//! From evidence to a diagnosis: the root-cause class, how sure it is, the
//! evidence for and against it, what still works, what evidence is still
//! missing, and the fix.
//!
//! Confidence follows from the evidence and nothing else. Exit status 137
//! means SIGKILL, and podman exits 137 without any OOM (podman #10825), so
//! 137 alone gives `killed-unknown` with an OOM suspected but unproven; an
//! `oom_kill` counter above 0, a kernel OOM line naming a process of the
//! failed command, or an engine's `OOMKilled=true` makes it `oom-kill`,
//! proven. The rules read only [`Evidence`], so evidence gathered live (the
//! node's cgroup, the kernel log, `container inspect`) feeds the same rules
//! as a log does.

use super::advice;
use super::evidence::{Evidence, Fact, Source};
use super::kernel::OomKill;
use super::signatures::{self, Signature};
use crate::engine::EngineKind;
use serde::Serialize;
use std::cmp::Reverse;
use std::fmt;

/// The JSON schema's name and version; bumped on any incompatible change.
pub const SCHEMA: &str = "loadmaster.triage/v1";

/// Root-cause classes. JSON: the kebab-case names (`oom-kill`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The kernel killed a process for lack of memory.
    OomKill,
    /// An allocation failed (ENOMEM) without a kill.
    OutOfMemory,
    /// A filesystem was full.
    DiskFull,
    /// A process was killed by SIGKILL and nothing shows who or why.
    KilledUnknown,
    /// A process was stopped by SIGTERM.
    Terminated,
    /// A process crashed (SIGSEGV).
    Crash,
    /// An engine or runtime process (podman service, dockerd, a node's
    /// containerd) went away mid-operation.
    EngineCrash,
    /// The engine reported an error of its own (exit 125).
    EngineError,
    /// A command was not found or could not be run (exit 127 / 126).
    CommandNotRunnable,
    PortConflict,
    NameConflict,
    ImageMissing,
    ImagePullFailure,
    /// A failure that goes away on retry.
    RuntimeTransient,
    Timeout,
    /// A kind node container did not finish booting.
    NodeStartFailure,
    BuildFailure,
    /// inotify (or open-file) limits too low for the nodes.
    InotifyLimits,
    /// An input (image archive) that cannot be read.
    CorruptInput,
    /// The environment came up; a test failed.
    TestFailure,
    /// Something failed and no rule explains it.
    Unknown,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::OomKill => "oom-kill",
            Class::OutOfMemory => "out-of-memory",
            Class::DiskFull => "disk-full",
            Class::KilledUnknown => "killed-unknown",
            Class::Terminated => "terminated",
            Class::Crash => "crash",
            Class::EngineCrash => "engine-crash",
            Class::EngineError => "engine-error",
            Class::CommandNotRunnable => "command-not-runnable",
            Class::PortConflict => "port-conflict",
            Class::NameConflict => "name-conflict",
            Class::ImageMissing => "image-missing",
            Class::ImagePullFailure => "image-pull-failure",
            Class::RuntimeTransient => "runtime-transient",
            Class::Timeout => "timeout",
            Class::NodeStartFailure => "node-start-failure",
            Class::BuildFailure => "build-failure",
            Class::InotifyLimits => "inotify-limits",
            Class::CorruptInput => "corrupt-input",
            Class::TestFailure => "test-failure",
            Class::Unknown => "unknown",
        }
    }

    /// How close to a root cause a class is: 0 for causes (a full disk, an
    /// OOM kill, a taken port), 1 for what happened without its cause (a kill,
    /// a crash, a timeout), 2 for what merely reports a failure (an exit code,
    /// a failed test). A cause outranks the symptoms it produces.
    fn depth(self) -> u8 {
        match self {
            Class::OomKill
            | Class::OutOfMemory
            | Class::DiskFull
            | Class::InotifyLimits
            | Class::PortConflict
            | Class::NameConflict
            | Class::ImageMissing
            | Class::CorruptInput => 0,
            Class::EngineCrash
            | Class::KilledUnknown
            | Class::Crash
            | Class::RuntimeTransient
            | Class::ImagePullFailure
            | Class::NodeStartFailure
            | Class::BuildFailure
            | Class::Timeout => 1,
            Class::CommandNotRunnable
            | Class::EngineError
            | Class::Terminated
            | Class::TestFailure
            | Class::Unknown => 2,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How sure a conclusion is. Ordered: `Suspected < Likely < Proven`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Consistent with the evidence, not shown by it.
    Suspected,
    /// Indirect evidence points at it.
    Likely,
    /// Direct evidence shows it.
    Proven,
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Confidence::Suspected => "suspected, unproven",
            Confidence::Likely => "likely",
            Confidence::Proven => "proven",
        })
    }
}

/// The phases of an E2E run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Build,
    ClusterCreate,
    ImageLoad,
    Deploy,
    Test,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Build => "build",
            Phase::ClusterCreate => "cluster-create",
            Phase::ImageLoad => "image-load",
            Phase::Deploy => "deploy",
            Phase::Test => "test",
        })
    }
}

/// Everything known about one failure: the input of [`diagnose`]. A log scan
/// ([`log::scan`](super::log::scan)) makes one; live collectors add evidence.
#[derive(Clone, Debug, Default)]
pub struct Case {
    /// What was examined, for the report: "build.log (212 lines)".
    pub inputs: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub failure: Option<Failure>,
    pub phase: Option<Phase>,
    /// The phases the evidence shows, in the order they began.
    pub phases_seen: Vec<Phase>,
    /// The engine the run used, when known: fix commands are for it.
    pub engine: Option<EngineKind>,
    pub timeline: Vec<Moment>,
}

/// What failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The command, as the log printed it.
    pub command: Option<String>,
    /// Its exit status (signals as 128 + N).
    pub exit_code: Option<i32>,
    /// The line that reports the failure.
    pub message: String,
    pub source: Source,
    /// The node container the command ran in (`exec NODE ...`).
    pub node: Option<String>,
}

impl Failure {
    /// The log line of the failure, when it came from a log.
    pub fn source_line(&self) -> Option<usize> {
        match self.source {
            Source::Log { line, .. } => Some(line),
            _ => None,
        }
    }

    /// The command without its flags: `podman exec NODE ctr images import`.
    pub fn short_command(&self) -> Option<String> {
        let command = self.command.as_ref()?;
        let words: Vec<&str> = command
            .split_whitespace()
            .filter(|w| !w.starts_with('-'))
            .collect();
        Some(words.join(" "))
    }
}

/// One entry of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moment {
    pub line: Option<usize>,
    pub time: Option<String>,
    pub event: String,
}

/// The result of triage.
///
/// JSON (schema [`SCHEMA`], documented in `docs/triage-json.md`): the fields
/// below with their names; `evidence_for`, `evidence_against` and
/// `also_seen` refer to entries of `evidence` by index.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    pub schema: &'static str,
    pub outcome: Outcome,
    /// One sentence: what happened and how sure that is.
    pub summary: String,
    pub inputs: Vec<String>,
    pub engine: Option<EngineKind>,
    pub phase: Option<Phase>,
    pub failed: Option<Failure>,
    /// `None` when no failure was found.
    pub root_cause: Option<RootCause>,
    pub evidence_for: Vec<Weighed>,
    pub evidence_against: Vec<Weighed>,
    pub still_works: Vec<String>,
    /// Evidence that would settle what is still open, with how to get it.
    pub to_collect: Vec<Collect>,
    pub fix: Vec<Step>,
    /// Other failures the evidence shows, less likely the cause.
    pub also_seen: Vec<Finding>,
    pub timeline: Vec<Moment>,
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Failure,
    NoFailureFound,
}

/// The root cause and how sure it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RootCause {
    pub class: Class,
    pub confidence: Confidence,
    /// For a class that leaves the cause open (`killed-unknown`,
    /// `engine-crash`): the cause suspected, unproven. `None` when the
    /// evidence refutes the usual suspect.
    pub suspected: Option<Class>,
    pub statement: String,
}

/// A piece of evidence and what it means for the root cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Weighed {
    /// Index into `evidence`.
    pub evidence: usize,
    pub reading: String,
}

/// Another failure in the evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub class: Class,
    pub confidence: Confidence,
    pub statement: String,
    /// Indices into `evidence`.
    pub evidence: Vec<usize>,
}

/// Evidence still to collect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collect {
    pub what: String,
    pub why: String,
    pub commands: Vec<CommandLine>,
}

/// One step of the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub what: String,
    pub commands: Vec<CommandLine>,
}

/// A command to run, and where it applies ("podman machine", "Linux host").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    pub context: Option<String>,
    pub run: String,
}

/// A candidate root cause, before the best one is chosen.
struct Candidate {
    class: Class,
    confidence: Confidence,
    suspected: Option<Class>,
    statement: String,
    evidence_for: Vec<Weighed>,
    evidence_against: Vec<Weighed>,
}

impl Candidate {
    fn first_evidence(&self, case: &Case) -> usize {
        self.evidence_for
            .iter()
            .map(|w| case.evidence[w.evidence].line().unwrap_or(usize::MAX))
            .min()
            .unwrap_or(usize::MAX)
    }
}

/// Diagnoses a case.
pub fn diagnose(case: &Case) -> Diagnosis {
    let mut candidates = Vec::new();
    candidates.extend(memory_candidate(case));
    candidates.extend(signature_candidates(case));
    // "Failed, unexplained" only stands when nothing explains the failure.
    if candidates.iter().any(|c| c.class != Class::Unknown) {
        candidates.retain(|c| c.class != Class::Unknown);
    }
    // Causes before symptoms, then the surer, then the earlier.
    candidates.sort_by_key(|c| {
        (
            c.class.depth(),
            Reverse(c.confidence),
            c.first_evidence(case),
        )
    });
    let mut candidates = candidates.into_iter();
    let Some(best) = candidates.next() else {
        return no_failure(case);
    };
    let also_seen = candidates
        .map(|c| Finding {
            class: c.class,
            confidence: c.confidence,
            statement: c.statement,
            evidence: c.evidence_for.iter().map(|w| w.evidence).collect(),
        })
        .collect();
    let root_cause = RootCause {
        class: best.class,
        confidence: best.confidence,
        suspected: best.suspected,
        statement: best.statement,
    };
    let summary = capitalised(&root_cause.statement);
    Diagnosis {
        schema: SCHEMA,
        outcome: Outcome::Failure,
        summary,
        inputs: case.inputs.clone(),
        engine: case.engine,
        phase: case.phase,
        failed: case.failure.clone(),
        still_works: still_works(case),
        to_collect: advice::to_collect(&root_cause, case),
        fix: advice::fix(&root_cause, case),
        root_cause: Some(root_cause),
        evidence_for: best.evidence_for,
        evidence_against: best.evidence_against,
        also_seen,
        timeline: case.timeline.clone(),
        evidence: case.evidence.clone(),
    }
}

fn no_failure(case: &Case) -> Diagnosis {
    let read = if case.inputs.is_empty() {
        "the evidence".to_string()
    } else {
        case.inputs.join(", ")
    };
    Diagnosis {
        schema: SCHEMA,
        outcome: Outcome::NoFailureFound,
        summary: format!(
            "No failure found in {read}: no known failure text, no non-zero exit status, no OOM kill."
        ),
        inputs: case.inputs.clone(),
        engine: case.engine,
        phase: case.phase,
        failed: None,
        root_cause: None,
        evidence_for: Vec::new(),
        evidence_against: Vec::new(),
        still_works: still_works(case),
        to_collect: Vec::new(),
        fix: Vec::new(),
        also_seen: Vec::new(),
        timeline: case.timeline.clone(),
        evidence: case.evidence.clone(),
    }
}

/// The signature a piece of evidence matched, exit statuses included.
fn signature_of(evidence: &Evidence) -> Option<&'static Signature> {
    match &evidence.fact {
        Fact::Signature { id, .. } => signatures::by_id(id),
        Fact::Exit { code, .. } => signatures::for_exit(*code),
        _ => None,
    }
}

/// The memory question: was a process that ended abruptly OOM-killed? Asked
/// whenever something was killed or lost its server, or an OOM is on record.
fn memory_candidate(case: &Case) -> Option<Candidate> {
    let related = |kill: &OomKill| related_to_failure(kill, case.failure.as_ref());
    let mut abrupt = Vec::new();
    let mut killed = Vec::new();
    let mut proof = Vec::new();
    let mut hints = Vec::new();
    let mut against = Vec::new();
    let mut strong_against = false;
    for (i, e) in case.evidence.iter().enumerate() {
        let weigh = |reading: String| Weighed {
            evidence: i,
            reading,
        };
        if let Some(signature) = signature_of(e).filter(|s| s.abrupt_end) {
            if signature.class == Class::KilledUnknown {
                killed.push(i);
            }
            abrupt.push(weigh(signature.meaning.to_string()));
        }
        match &e.fact {
            Fact::OomKill(kill) if related(kill) => proof.push(weigh(format!(
                "{kill}: {} is part of the failed command",
                kill.process
            ))),
            Fact::OomKill(kill) => hints.push(weigh(format!(
                "{kill}: memory ran out, but {} is not named by the failed command",
                kill.process
            ))),
            Fact::Memory(m) if m.oom_kill.is_some_and(|k| k > 0) => proof.push(weigh(format!(
                "the cgroup's OOM-kill counter is {} ({}): the kernel killed a task in it",
                m.oom_kill.unwrap_or_default(),
                m.oom_kill_file()
            ))),
            Fact::Memory(m) => {
                if m.hit_limit() {
                    hints.push(weigh(
                        "the cgroup's usage reached its limit: memory pressure".into(),
                    ));
                }
                if m.oom_kill == Some(0) {
                    strong_against = true;
                    against.push(weigh(format!(
                        "the cgroup's OOM-kill counter is 0 ({}): no task in it was OOM-killed",
                        m.oom_kill_file()
                    )));
                }
            }
            Fact::Container(c) if c.oom_killed => proof.push(weigh(format!(
                "{} reports OOMKilled=true for {}",
                c.engine, c.name
            ))),
            Fact::Container(c) => {
                if c.exit_code == 137 {
                    killed.push(i);
                    abrupt.push(weigh(format!("container {} exited 137 (SIGKILL)", c.name)));
                }
                against.push(weigh(format!(
                    "{} reports OOMKilled=false for {}: weak, podman 4.3 on cgroup v1 reports false even for a kernel OOM kill",
                    c.engine, c.name
                )));
            }
            Fact::KernelLogRead { oom_kills: 0, .. } => {
                strong_against = true;
                against.push(weigh(
                    "the kernel log holds no OOM kill (check that it reaches back to the failure)"
                        .into(),
                ));
            }
            Fact::Signature { id, .. } if *id == "cannot-allocate-memory" => {
                hints.push(weigh("an allocation failed: memory ran short".into()));
            }
            _ => {}
        }
    }
    let during = during(case);
    let what = case
        .failure
        .as_ref()
        .and_then(Failure::short_command)
        .map_or("a process".to_string(), |c| format!("`{c}`"));
    if !proof.is_empty() {
        let shown = case.evidence[proof[0].evidence].fact.to_string();
        let mut evidence_for = proof;
        evidence_for.extend(abrupt);
        evidence_for.extend(hints);
        return Some(Candidate {
            class: Class::OomKill,
            confidence: Confidence::Proven,
            suspected: None,
            statement: format!("{what} failed{during}: OOM kill, proven: {shown}."),
            evidence_for,
            evidence_against: against,
        });
    }
    if abrupt.is_empty() {
        return None;
    }
    if !hints.is_empty() && !strong_against {
        let mut evidence_for = abrupt;
        evidence_for.extend(hints);
        return Some(Candidate {
            class: Class::OomKill,
            confidence: Confidence::Likely,
            suspected: None,
            statement: format!(
                "{what} was killed{during}; OOM kill likely: memory ran short, but no OOM kill of its processes is on record."
            ),
            evidence_for,
            evidence_against: against,
        });
    }
    let suspected = (!strong_against).then_some(Class::OomKill);
    let cause = if strong_against {
        "OOM refuted by the evidence against; something else ended it"
    } else {
        "OOM suspected, unproven"
    };
    let (class, happened) = if killed.is_empty() {
        (Class::EngineCrash, "lost the containerd it talked to")
    } else {
        (Class::KilledUnknown, "was killed by SIGKILL")
    };
    let status = case
        .failure
        .as_ref()
        .and_then(|f| f.exit_code)
        .map_or(String::new(), |code| format!(" (exit status {code})"));
    Some(Candidate {
        class,
        confidence: Confidence::Suspected,
        suspected,
        statement: format!("{what} {happened}{status}{during}; {cause}."),
        evidence_for: abrupt,
        evidence_against: against,
    })
}

/// True when an OOM-killed process belongs to the failed command: it is
/// named in it, or it is the containerd that a `ctr` in it talks to.
fn related_to_failure(kill: &OomKill, failure: Option<&Failure>) -> bool {
    let Some(command) = failure.and_then(|f| f.command.as_deref()) else {
        return false;
    };
    let programs: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .collect();
    programs.contains(&kill.process.as_str())
        || (kill.process == "containerd" && programs.contains(&"ctr"))
}

/// " during image-load", or nothing when the phase is unknown.
fn during(case: &Case) -> String {
    case.phase
        .map_or(String::new(), |phase| format!(" during {phase}"))
}

/// One candidate per class the non-memory signatures point at.
fn signature_candidates(case: &Case) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut unexplained_exit = None;
    for (i, e) in case.evidence.iter().enumerate() {
        let Some(signature) = signature_of(e) else {
            if let Fact::Exit { .. } = e.fact {
                unexplained_exit.get_or_insert(i);
            }
            continue;
        };
        if signature.abrupt_end {
            continue;
        }
        let reading = match &e.fact {
            Fact::Signature {
                subject: Some(subject),
                ..
            } => format!("{} ({subject})", signature.meaning),
            _ => signature.meaning.to_string(),
        };
        let weighed = Weighed {
            evidence: i,
            reading,
        };
        match candidates.iter_mut().find(|c| c.class == signature.class) {
            Some(candidate) => {
                candidate.confidence = candidate.confidence.max(signature.confidence);
                candidate.evidence_for.push(weighed);
            }
            None => candidates.push(Candidate {
                class: signature.class,
                confidence: signature.confidence,
                suspected: None,
                statement: statement(signature, e, case),
                evidence_for: vec![weighed],
                evidence_against: Vec::new(),
            }),
        }
    }
    // A full disk names its filesystem when its free space was measured.
    for candidate in candidates.iter_mut().filter(|c| c.class == Class::DiskFull) {
        if let Some(i) = written_path(case).and_then(|path| filesystem_of(case, &path)) {
            candidate.evidence_for.push(Weighed {
                evidence: i,
                reading: format!(
                    "the filesystem the failed write went to: {}",
                    case.evidence[i].fact
                ),
            });
        }
    }
    // A filesystem found full when triage looked, with no message saying so
    // (podman exec can lose a command's last stderr lines): likely the cause.
    if let Some(exit) = unexplained_exit
        && !candidates.iter().any(|c| c.class == Class::DiskFull)
        && let Some((full, path)) = case
            .evidence
            .iter()
            .enumerate()
            .find_map(|(i, e)| full_disk(&e.fact).map(|path| (i, path)))
    {
        candidates.push(Candidate {
            class: Class::DiskFull,
            confidence: Confidence::Likely,
            suspected: None,
            statement: format!(
                "The filesystem at {} was full when triage looked ({}) after {}{}: a full disk is likely the cause, though no \"no space left on device\" was seen.",
                path,
                case.evidence[full].fact,
                case.evidence[exit].fact,
                during(case)
            ),
            evidence_for: vec![Weighed {
                evidence: full,
                reading: "a filesystem the failed command writes to was full".into(),
            }],
            evidence_against: Vec::new(),
        });
    }
    if candidates.is_empty()
        && let Some(i) = unexplained_exit
    {
        candidates.push(Candidate {
            class: Class::Unknown,
            confidence: Confidence::Suspected,
            suspected: None,
            statement: format!(
                "{}{}; no known failure text explains it: read the lines before it.",
                case.evidence[i].fact,
                during(case)
            ),
            evidence_for: vec![Weighed {
                evidence: i,
                reading: "a command failed".into(),
            }],
            evidence_against: Vec::new(),
        });
    }
    candidates
}

/// The path of a measured filesystem with (almost) nothing left: under
/// 1 MiB, or under 1% of its size.
fn full_disk(fact: &Fact) -> Option<&str> {
    match fact {
        Fact::Disk {
            path,
            available_bytes,
            size_bytes,
        } if *size_bytes > 0 && *available_bytes < (1 << 20).max(size_bytes / 100) => Some(path),
        _ => None,
    }
}

/// The statement for a class, from its first piece of evidence.
fn statement(signature: &Signature, evidence: &Evidence, case: &Case) -> String {
    let subject = match &evidence.fact {
        Fact::Signature { subject, .. } => subject.clone(),
        _ => None,
    };
    let during = during(case);
    let named = |what: &str| {
        subject
            .as_ref()
            .map_or(String::new(), |s| format!(" {what} {s}"))
    };
    match signature.class {
        Class::DiskFull => {
            let measured = subject
                .as_deref()
                .and_then(|written| filesystem_of(case, written))
                .map(|i| &case.evidence[i].fact);
            match (&subject, measured) {
                (
                    Some(written),
                    Some(Fact::Disk {
                        path,
                        available_bytes,
                        size_bytes,
                    }),
                ) => format!(
                    "The filesystem at {path} was full{during}: writing {written} failed with \"no space left on device\", proven; it holds {} and had {} free when triage looked (a failed write's partial data may have been removed since).",
                    crate::units::bytes(*size_bytes),
                    crate::units::bytes(*available_bytes)
                ),
                (Some(written), _) => format!(
                    "A filesystem was full{during}: writing {written} failed with \"no space left on device\", proven; its free space was not measured."
                ),
                (None, _) => format!(
                    "A filesystem was full{during} (\"no space left on device\"), proven; which one is not in the evidence yet."
                ),
            }
        }
        Class::NameConflict => format!(
            "A container or cluster name{} was already taken{during}, proven: a leftover of an earlier run.",
            named("")
        ),
        Class::PortConflict => format!(
            "A host port{} was already taken{during}, proven.",
            named("")
        ),
        Class::ImageMissing => format!(
            "The engine asked had no image{}{during}, proven.",
            named("")
        ),
        Class::RuntimeTransient => format!(
            "{}{during}: a runtime failure that goes away on retry, suspected.",
            capitalised(signature.meaning)
        ),
        _ => format!(
            "{}{during} ({}).",
            capitalised(signature.meaning),
            signature.confidence
        ),
    }
}

/// The path of the first write that failed with "no space left on device".
fn written_path(case: &Case) -> Option<String> {
    case.evidence.iter().find_map(|e| match &e.fact {
        Fact::Signature {
            id: "no-space",
            subject,
        } => subject.clone(),
        _ => None,
    })
}

/// The disk evidence of the filesystem holding `written`: the measured path
/// that is its longest ancestor.
fn filesystem_of(case: &Case, written: &str) -> Option<usize> {
    case.evidence
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.fact {
            Fact::Disk { path, .. } => {
                let base = path.trim_end_matches('/');
                let inside = written == base
                    || written
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.starts_with('/'));
                inside.then_some((base.len(), i))
            }
            _ => None,
        })
        .max()
        .map(|(_, i)| i)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// What the evidence shows still works.
fn still_works(case: &Case) -> Vec<String> {
    let mut works = Vec::new();
    if let Some(failure) = &case.failure
        && let (Some(node), Some(line)) = (&failure.node, failure.source_line())
        && let Some(inner) = inner_program(failure)
    {
        // The command's own error text came back from inside the node.
        let inner_spoke = case.evidence.iter().any(|e| {
            matches!(e.fact, Fact::Signature { id, .. } if matches!(id, "progress-stream-recv" | "transport-closing" | "server-eof"))
                && e.line().is_some_and(|l| l >= line)
        });
        if inner_spoke {
            works.push(format!(
                "The exec reached node {node} and `{inner}` ran inside it (its own error follows the failure): the engine, the node container and the node's containerd were up when the command started."
            ));
        }
    }
    if let Some(failed) = case.phase {
        let before: Vec<String> = case
            .phases_seen
            .iter()
            .take_while(|&&p| p != failed)
            .map(Phase::to_string)
            .collect();
        if !before.is_empty() {
            works.push(format!(
                "Phases the log shows finishing before {failed}: {}.",
                before.join(", ")
            ));
        }
    }
    for e in &case.evidence {
        match &e.fact {
            Fact::Container(c) if c.status == "running" => {
                works.push(format!("Node container {} is running.", c.name));
            }
            Fact::EngineMemory { engine, .. } => {
                works.push(format!("{engine} answers (`{engine} info`)."));
            }
            _ => {}
        }
    }
    works
}

/// The program an exec ran in its container: `ctr` of `podman exec -i n ctr ...`.
fn inner_program(failure: &Failure) -> Option<&str> {
    let node = failure.node.as_deref()?;
    let mut words = failure.command.as_deref()?.split_whitespace();
    words.by_ref().find(|w| *w == node)?;
    words.find(|w| !w.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::log;

    fn root(text: &str) -> RootCause {
        diagnose(&log::scan(text, "t.log")).root_cause.unwrap()
    }

    #[test]
    fn a_cause_outranks_the_symptoms_it_produces() {
        // The kill explains the failed test, not the other way round.
        let r = root("--- FAIL: TestE2E (300.00s)\nctr import: signal: killed\n");
        assert_eq!(r.class, Class::KilledUnknown);
        // A full disk explains the timeout that followed it.
        let r = root("Error: context deadline exceeded\nwrite /tmp/x: no space left on device\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::DiskFull, Confidence::Proven)
        );
    }

    #[test]
    fn unexplained_failures_stay_unknown_and_signatures_alone_keep_their_confidence() {
        let r = root("step 4\nError: exit status 3\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::Unknown, Confidence::Suspected)
        );
        let r = root("error: timed out waiting for the condition on deployments/app\n");
        assert_eq!(
            (r.class, r.confidence),
            (Class::Timeout, Confidence::Likely)
        );
        // containerd gone with no kill status: the runtime crashed, OOM suspected.
        let r = root("ctr: failed to send write: transport is closing: unavailable\n");
        assert_eq!(r.class, Class::EngineCrash);
        assert_eq!(r.suspected, Some(Class::OomKill));
    }

    #[test]
    fn an_oom_of_an_unrelated_process_is_not_proof() {
        let failure = Failure {
            command: Some("podman exec -i n ctr images import -".into()),
            exit_code: Some(137),
            message: String::new(),
            source: Source::Command {
                command: "x".into(),
            },
            node: Some("n".into()),
        };
        let kill = |process: &str| OomKill {
            pid: 1,
            process: process.into(),
            scope: crate::triage::kernel::OomScope::System,
            memcg: None,
            anon_rss_kib: None,
            usage_kib: None,
            limit_kib: None,
        };
        assert!(related_to_failure(&kill("containerd"), Some(&failure)));
        assert!(related_to_failure(&kill("ctr"), Some(&failure)));
        assert!(related_to_failure(&kill("podman"), Some(&failure)));
        assert!(!related_to_failure(&kill("java"), Some(&failure)));
        assert!(!related_to_failure(&kill("ctr"), None));
    }
}
