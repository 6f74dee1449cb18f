//! The triage corpus as tests: real failure logs from public issue threads
//! (`tests/fixtures/triage-corpus`, provenance in its `index.toml`), each with
//! the cause its thread settled on.
//!
//! Every case must get its class, and no case may get a "proven" that the
//! log alone does not justify (a wrong class, or a case whose careful
//! reading is only likely). The cases triage still misses are listed in
//! [`KNOWN_MISSES`] with what it says instead: a miss that starts to pass, or
//! a new miss, fails the test, so the list stays the truth. `bench/triage`
//! prints the same figures per class.

use loadmaster::triage::{self, Class, Confidence, Outcome};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Index {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    file: String,
    source: String,
    date: String,
    phase: String,
    class: String,
    cause: String,
    confidence: String,
}

/// Cases whose class triage does not get yet, with the class it gives
/// (`no-failure-found`: it found none). Figures: `bench/triage`.
const KNOWN_MISSES: &[(&str, &str)] = &[
    ("048-e2e-kube-system-not-ready-10m", "readiness-timeout"),
    ("063-podman-info-rootless-panic", "app-crash"),
    ("069-pytest-xdist-worker-crashed-oom", "no-failure-found"),
    (
        "083-kind-list-nodes-docker-socket-denied",
        "provider-mismatch",
    ),
    ("088-operator-crashloop-exit1-no-arm64-image", "crash-loop"),
    ("089-kind-node-image-pull-root-4gb", "image-pull-failure"),
    (
        "091-kind-ci-webhook-refused-insufficient-cpu",
        "dependency-not-ready",
    ),
    ("115-ct-install-helm-wait-timed-out", "timeout"),
    (
        "180-kind-load-archive-podman-cluster-docker-daemon",
        "engine-error",
    ),
];

/// Cases where triage says "proven" and the log alone does not justify it.
/// The goal is none; each would be a defect to fix, listed so that no new
/// one slips in unnoticed. The last one (096, a pod status of
/// ErrImageNeverPull beside `docker image ls` listing the image) is now
/// a likely provider mismatch: the status proves the pod cannot start, not
/// why.
const KNOWN_OVERCLAIMS: &[&str] = &[];

/// Cases of the right class where triage is surer than a careful reading
/// of the log alone (one step: likely for suspected, proven for likely).
const KNOWN_SURER: &[&str] = &[
    "038-k3d-multiserver-zfs-raft-init",
    "067-ci-kind-version-kubeadm-flag",
    "108-watcher-too-many-open-files-instances",
];

fn corpus() -> (PathBuf, Vec<Case>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/triage-corpus");
    let text = std::fs::read_to_string(dir.join("index.toml")).expect("index.toml");
    let index: Index = toml::from_str(&text).expect("index.toml parses");
    (dir, index.case)
}

fn confidence(name: &str) -> Confidence {
    match name {
        "proven" => Confidence::Proven,
        "likely" => Confidence::Likely,
        "suspected" => Confidence::Suspected,
        other => panic!("unknown confidence {other:?}"),
    }
}

/// What triage says of one case: its class (`no-failure-found` when it
/// found none) and confidence.
fn triage_case(dir: &std::path::Path, case: &Case) -> (String, Option<Confidence>) {
    let text = std::fs::read_to_string(dir.join(&case.file)).expect("case file");
    let d = triage::triage_log(&text, &case.file);
    match (d.outcome, d.root_cause) {
        (Outcome::Failure, Some(root)) => (root.class.name().to_string(), Some(root.confidence)),
        _ => ("no-failure-found".to_string(), None),
    }
}

#[test]
fn the_index_is_complete_and_names_known_classes() {
    let (dir, cases) = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for case in &cases {
        assert!(
            dir.join(&case.file).is_file(),
            "{}: no {}",
            case.id,
            case.file
        );
        assert!(
            case.file.ends_with(&format!("{}.log", case.id)),
            "{}",
            case.id
        );
        assert!(
            Class::from_name(&case.class).is_some(),
            "{}: class {} is not one triage has",
            case.id,
            case.class
        );
        confidence(&case.confidence);
        // A date may be empty where none could be established (the corpus
        // README says which); the rest may not.
        assert!(
            case.date.is_empty() || case.date.len() == 10,
            "{}: date {:?}",
            case.id,
            case.date
        );
        for (field, value) in [
            ("source", &case.source),
            ("phase", &case.phase),
            ("cause", &case.cause),
        ] {
            assert!(!value.trim().is_empty(), "{}: empty {field}", case.id);
        }
    }
}

#[test]
fn no_case_gets_a_proven_the_log_does_not_justify() {
    let (dir, cases) = corpus();
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let (class, sure) = triage_case(&dir, case);
            let overclaimed = sure == Some(Confidence::Proven)
                && (class != case.class || confidence(&case.confidence) != Confidence::Proven);
            overclaimed.then(|| format!("{}: proven {class}, thread: {}", case.id, case.class))
        })
        .collect();
    let unlisted: Vec<&String> = wrong
        .iter()
        .filter(|w| {
            !KNOWN_OVERCLAIMS
                .iter()
                .any(|id| w.starts_with(&format!("{id}:")))
        })
        .collect();
    let fixed: Vec<&&str> = KNOWN_OVERCLAIMS
        .iter()
        .filter(|id| !wrong.iter().any(|w| w.starts_with(&format!("{id}:"))))
        .collect();
    assert!(
        unlisted.is_empty() && fixed.is_empty(),
        "wrong \"proven\" not listed: {unlisted:#?}\nlisted but no longer wrong: {fixed:?}"
    );
}

#[test]
fn every_case_gets_its_class_except_the_known_misses() {
    let (dir, cases) = corpus();
    let mut unexpected = Vec::new();
    for case in &cases {
        let (class, _) = triage_case(&dir, case);
        let known = KNOWN_MISSES.iter().find(|(id, _)| *id == case.id);
        match known {
            None if class != case.class => unexpected.push(format!(
                "{}: triage says {class}, the thread {}",
                case.id, case.class
            )),
            Some((_, said)) if class != *said => unexpected.push(format!(
                "{}: listed as a miss giving {said}, now gives {class} (the thread: {})",
                case.id, case.class
            )),
            _ => {}
        }
    }
    for (id, _) in KNOWN_MISSES {
        assert!(
            cases.iter().any(|c| c.id == *id),
            "{id} is not in the corpus"
        );
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

#[test]
fn no_right_class_is_surer_than_the_log_allows_except_the_known() {
    let (dir, cases) = corpus();
    let surer: Vec<&str> = cases
        .iter()
        .filter(|case| {
            let (class, sure) = triage_case(&dir, case);
            class == case.class && sure.is_some_and(|s| s > confidence(&case.confidence))
        })
        .map(|case| case.id.as_str())
        .collect();
    assert_eq!(surer, KNOWN_SURER, "surer than the thread's reading");
}
