//! Reading any log (kind, podman, docker, make, go test / ginkgo, loadmaster)
//! for failure evidence: signature hits, exit statuses, kernel OOM lines, the
//! command that failed, the phase it failed in, and timestamps where the
//! lines carry them.
//!
//! Nothing here knows which tool wrote the log: the texts looked for are the
//! ones those tools print, and everything else is skipped.

use super::diagnosis::{Case, Failure, Moment, Phase};
use super::evidence::{Evidence, Fact, Source};
use super::kernel;
use super::kube;
use super::signatures::SIGNATURES;
use crate::engine::EngineKind;

/// Scans a log; `file` names it in evidence sources ("stdin" for `-`).
pub fn scan(text: &str, file: &str) -> Case {
    let lines: Vec<String> = text.split('\n').map(clean).collect();
    // A trailing newline is not a line.
    let count = lines.len() - usize::from(text.ends_with('\n'));
    let at = |line| Source::Log {
        file: file.to_string(),
        line,
    };
    let mut evidence = Vec::new();
    let mut exits: Vec<(usize, Option<String>, i32)> = Vec::new();
    let mut phases: Vec<(usize, Phase)> = Vec::new();
    for (index, line) in lines.iter().enumerate().take(count) {
        let number = index + 1;
        let lower = line.to_lowercase();
        let time = timestamp(line);
        if let Some(phase) = phase_of(&lower)
            && phases.last().is_none_or(|&(_, last)| last != phase)
        {
            phases.push((number, phase));
        }
        if let Some(code) = exit_status(&lower) {
            let command = failed_command(line);
            exits.push((number, command.clone(), code));
            evidence.push(
                Evidence::new(at(number), Fact::exit(code, command))
                    .with_excerpt(line.trim())
                    .with_time(time.clone()),
            );
        }
        if says_server_ready(&lower) {
            evidence.push(
                Evidence::new(at(number), Fact::ServerReady)
                    .with_excerpt(line.trim())
                    .with_time(time.clone()),
            );
        }
        for signature in SIGNATURES.iter().filter(|s| s.matches_text(&lower)) {
            let subject = signature.subject.and_then(|extract| extract(line));
            evidence.push(
                Evidence::new(
                    at(number),
                    Fact::Signature {
                        id: signature.id,
                        subject,
                    },
                )
                .with_excerpt(line.trim())
                .with_time(time.clone()),
            );
        }
    }
    evidence.extend(kernel::evidence(&lines[..count].join("\n"), &at));
    for (number, found) in kube::read(&lines[..count]) {
        let fact = match found {
            kube::Found::Container(status) => Fact::PodContainer(status),
            kube::Found::Event(event) => Fact::KubeEvent(event),
        };
        evidence.push(Evidence::new(at(number), fact).with_excerpt(lines[number - 1].trim()));
    }
    evidence.extend(image_listings(&lines[..count], &at));
    evidence.sort_by_key(|e| e.line());

    let failure = failure(&exits, &lines, &at);
    let phase = failure
        .as_ref()
        .and_then(|f| f.source_line())
        .and_then(|line| phase_at(&phases, line))
        .or_else(|| phases.last().map(|&(_, phase)| phase));
    Case {
        inputs: vec![format!("{file} ({count} lines)")],
        engine: failure
            .as_ref()
            .and_then(|f| f.command.as_deref())
            .and_then(engine_of_command)
            .or_else(|| engine_of_log(&lines)),
        timeline: timeline(&phases, &evidence, &lines),
        phases_seen: phases.iter().map(|&(_, phase)| phase).collect(),
        evidence,
        failure,
        phase,
    }
}

/// A server's word that it accepts connections now: PostgreSQL's and
/// Redis's "ready to accept connections", MySQL's "ready for connections".
fn says_server_ready(lower: &str) -> bool {
    lower.contains("ready to accept connections") || lower.contains("ready for connections")
}

/// Image listings (`docker image ls`, `docker images`, `podman images`):
/// a `REPOSITORY TAG IMAGE ID` header and its rows, up to the first line
/// that is not a row. The engine is the one of the command on the line
/// before the header, when the log shows it (`$ docker image ls`).
fn image_listings(lines: &[String], at: &dyn Fn(usize) -> Source) -> Vec<Evidence> {
    let mut out = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.starts_with(&["REPOSITORY", "TAG", "IMAGE", "ID"]) {
            continue;
        }
        let images: Vec<String> = lines[index + 1..]
            .iter()
            .map(|row| row.split_whitespace().collect::<Vec<_>>())
            .take_while(|row| row.len() >= 4 && !row[0].starts_with('$'))
            .map(|row| format!("{}:{}", row[0], row[1]))
            .collect();
        if images.is_empty() {
            continue;
        }
        let engine = index
            .checked_sub(1)
            .map(|before| lines[before].trim_start_matches(['$', '#', ' ']))
            .and_then(engine_of_command);
        out.push(
            Evidence::new(at(index + 1), Fact::EngineImages { engine, images })
                .with_excerpt(line.trim()),
        );
    }
    out
}

/// A line as printed: colours removed, and for a line redrawn with carriage
/// returns (progress bars), its last state.
fn clean(line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let line = line.rsplit('\r').next().unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequence: ESC [ parameters final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The non-zero exit status a line reports, as the shell numbers it.
fn exit_status(lower: &str) -> Option<i32> {
    // Go's os/exec: "signal: killed"; gcc's driver: "Killed signal
    // terminated program cc1plus"; others by their number.
    const SIGNALS: [(&str, i32); 5] = [
        ("signal: killed", 137),
        ("killed signal terminated program", 137),
        ("signal: terminated", 143),
        ("signal: segmentation fault", 139),
        ("signal: aborted", 134),
    ];
    if let Some(&(_, code)) = SIGNALS.iter().find(|(text, _)| lower.contains(text)) {
        return Some(code);
    }
    const MARKERS: [&str; 7] = [
        "exit status ",               // Go: exit status 137
        "exit status: ",              // Rust: exit status: 1
        "exited with code ",          // docker compose, CI runners
        "exit code: ",                // buildkit: exit code: 2
        "exit code ",                 // many
        "returned a non-zero code: ", // docker build (legacy builder)
        "] error ",                   // make: *** [Makefile:12: e2e] Error 2
    ];
    MARKERS.iter().find_map(|marker| {
        let at = lower.find(marker)? + marker.len();
        let digits: String = lower[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|&code| code != 0)
    })
}

/// The command a line says failed: kind's `command "X" failed with error`,
/// loadmaster's "`X` failed (...)", make's `*** [Makefile:12: target] Error 2`.
fn failed_command(line: &str) -> Option<String> {
    if let Some(at) = line.find("command \"") {
        let rest = &line[at + "command \"".len()..];
        if let Some(end) = rest.find("\" failed") {
            return Some(rest[..end].to_string());
        }
    }
    if let Some(start) = line.find('`') {
        let rest = &line[start + 1..];
        if let Some(end) = rest.find("` failed") {
            return Some(rest[..end].to_string());
        }
    }
    let lower = line.to_lowercase();
    if lower.contains("make") && lower.contains("*** [") {
        let inside = line.split("*** [").nth(1)?.split(']').next()?;
        let target = inside.rsplit(':').next()?.trim();
        return Some(format!("make {target}"));
    }
    None
}

/// What failed: the first failing command the log names (later ones are
/// usually wrappers reporting the same failure: make, the test runner), or
/// else the first non-zero exit.
fn failure(
    exits: &[(usize, Option<String>, i32)],
    lines: &[String],
    at: &dyn Fn(usize) -> Source,
) -> Option<Failure> {
    let is_wrapper = |command: &str| command.starts_with("make ");
    let chosen = exits
        .iter()
        .find(|(_, command, _)| command.as_deref().is_some_and(|c| !is_wrapper(c)))
        .or_else(|| exits.iter().find(|(_, command, _)| command.is_some()))
        .or_else(|| exits.first())?;
    let (line, command, code) = chosen.clone();
    Some(Failure {
        node: command.as_deref().and_then(exec_container),
        command,
        exit_code: Some(code),
        message: lines[line - 1].trim().to_string(),
        source: at(line),
    })
}

/// The container of `docker|podman exec [flags] CONTAINER ...`.
pub fn exec_container(command: &str) -> Option<String> {
    const VALUE_FLAGS: [&str; 8] = [
        "-e",
        "--env",
        "-u",
        "--user",
        "-w",
        "--workdir",
        "--detach-keys",
        "--env-file",
    ];
    let mut words = command.split_whitespace();
    let program = words.next()?;
    if engine_of_command(program).is_none() || words.next()? != "exec" {
        return None;
    }
    while let Some(word) = words.next() {
        if VALUE_FLAGS.contains(&word) {
            words.next();
        } else if !word.starts_with('-') {
            return Some(word.to_string());
        }
    }
    None
}

/// The engine a command runs: its program's name.
fn engine_of_command(command: &str) -> Option<EngineKind> {
    let program = command.split_whitespace().next()?;
    let name = program.rsplit('/').next()?;
    EngineKind::ALL.into_iter().find(|kind| kind.name() == name)
}

/// The engine a log shows in use: kind names its provider, and engine
/// commands name themselves.
fn engine_of_log(lines: &[String]) -> Option<EngineKind> {
    const SIGNS: [(&str, EngineKind); 6] = [
        ("enabling experimental podman provider", EngineKind::Podman),
        ("kind_experimental_provider=podman", EngineKind::Podman),
        ("podman exec", EngineKind::Podman),
        ("podman save", EngineKind::Podman),
        ("docker exec", EngineKind::Docker),
        ("docker save", EngineKind::Docker),
    ];
    lines.iter().find_map(|line| {
        let lower = line.to_lowercase();
        SIGNS
            .iter()
            .find(|(sign, _)| lower.contains(sign))
            .map(|&(_, kind)| kind)
    })
}

/// The phase a line belongs to, when it says.
fn phase_of(lower: &str) -> Option<Phase> {
    const MARKERS: [(Phase, &[&str]); 5] = [
        (
            Phase::ImageLoad,
            &[
                "kind load",
                "images import",
                "image import",
                "failed to load image",
                "image-archive",
                "loading image",
                "not yet present on node",
                "loadmaster load",
            ],
        ),
        (
            Phase::ClusterCreate,
            &[
                "kind create cluster",
                "creating cluster",
                "ensuring node image",
                "preparing nodes",
                "starting control-plane",
                "joining worker nodes",
                "failed to create cluster",
                "could not find a log line",
            ],
        ),
        (
            Phase::Build,
            &[
                "docker build",
                "podman build",
                "buildah bud",
                "building image",
                "error building",
                "failed to solve",
                "building at step",
                "go build",
            ],
        ),
        (
            Phase::Deploy,
            &[
                "kubectl apply",
                "kubectl rollout",
                "kubectl wait",
                "kubectl logs",
                "oc logs",
                "helm install",
                "helm upgrade",
                "errimagepull",
                "imagepullbackoff",
                "crashloopbackoff",
                "waiting for deployment",
            ],
        ),
        (
            Phase::Test,
            &[
                "=== run",
                "--- fail",
                "--- pass",
                "[fail]",
                "running suite",
                "ginkgo",
                "go test",
            ],
        ),
    ];
    MARKERS
        .iter()
        .find(|(_, markers)| markers.iter().any(|m| lower.contains(m)))
        .map(|&(phase, _)| phase)
}

/// The phase in force at `line`: the last phase marker at or before it.
fn phase_at(phases: &[(usize, Phase)], line: usize) -> Option<Phase> {
    phases
        .iter()
        .take_while(|&&(at, _)| at <= line)
        .last()
        .map(|&(_, phase)| phase)
}

/// Phase changes and evidence, in log order.
fn timeline(phases: &[(usize, Phase)], evidence: &[Evidence], lines: &[String]) -> Vec<Moment> {
    let mut moments: Vec<Moment> = phases
        .iter()
        .map(|&(line, phase)| Moment {
            line: Some(line),
            time: timestamp(&lines[line - 1]),
            event: format!("{phase} starts: {}", excerpt(&lines[line - 1])),
        })
        .collect();
    moments.extend(evidence.iter().map(|e| Moment {
        line: e.line(),
        time: e.time.clone(),
        event: e.fact.to_string(),
    }));
    moments.sort_by_key(|m| m.line);
    moments
}

/// A line shortened for the timeline.
fn excerpt(line: &str) -> String {
    const MAX: usize = 120;
    let line = line.trim();
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

/// The time a line carries, as written: `time="..."` (logrus), a leading
/// RFC 3339 or `YYYY-MM-DD HH:MM:SS` stamp, `[  12.34]` or `[Mon Dec 15
/// 23:08:21 2025]` (dmesg), `Dec 15 23:08:21` (syslog, journalctl), or
/// `E1215 23:08:22.123456` (klog).
pub fn timestamp(line: &str) -> Option<String> {
    if let Some(at) = line.find("time=\"") {
        let rest = &line[at + "time=\"".len()..];
        return rest.split('"').next().map(str::to_string);
    }
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        let inside = rest.split(']').next()?.trim();
        let dmesg = inside.chars().all(|c| c.is_ascii_digit() || c == '.');
        let dated = inside.len() >= 20 && inside.contains(':');
        return (!inside.is_empty() && (dmesg || dated)).then(|| inside.to_string());
    }
    let mut words = trimmed.split_whitespace();
    let first = words.next()?;
    let b = first.as_bytes();
    let is_date =
        b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-';
    if is_date {
        if first.contains('T') {
            return Some(first.to_string());
        }
        let second = words.next().filter(|w| is_clock(w))?;
        return Some(format!("{first} {second}"));
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if MONTHS.contains(&first) {
        let day = words.next()?;
        let clock = words.next().filter(|w| is_clock(w))?;
        return Some(format!("{first} {day} {clock}"));
    }
    // klog: a severity letter, then MMDD.
    let klog = b.len() == 5 && b"IWEF".contains(&b[0]) && b[1..].iter().all(u8::is_ascii_digit);
    if klog {
        let clock = words.next().filter(|w| is_clock(w))?;
        return Some(format!("{} {clock}", &first[1..]));
    }
    None
}

/// `HH:MM:SS` with optional fractions.
fn is_clock(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_listing_names_its_engine_and_rows() {
        let case = scan(
            "$ podman images\n\
             REPOSITORY                TAG      IMAGE ID      CREATED        SIZE\n\
             localhost/app             dev      5fc5c70ca2a0  2 minutes ago  937 MB\n\
             docker.io/library/nginx   latest   5cfe2963d143  10 hours ago   187 MB\n\
             $ kubectl get pods\n",
            "t.log",
        );
        let listed: Vec<&Fact> = case
            .evidence
            .iter()
            .map(|e| &e.fact)
            .filter(|f| matches!(f, Fact::EngineImages { .. }))
            .collect();
        assert_eq!(
            listed,
            [&Fact::EngineImages {
                engine: Some(EngineKind::Podman),
                images: vec![
                    "localhost/app:dev".into(),
                    "docker.io/library/nginx:latest".into()
                ],
            }]
        );
        // A header with no rows lists nothing.
        let empty = scan("REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n", "t.log");
        assert!(empty.evidence.is_empty());
    }

    #[test]
    fn a_server_says_when_it_accepts_connections() {
        for line in [
            "LOG:  database system is ready to accept connections",
            "1:M 07 Feb 2026 01:01:23.074 * Ready to accept connections tcp",
            "[System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections.",
        ] {
            assert!(says_server_ready(&line.to_lowercase()), "{line}");
        }
        assert!(!says_server_ready("waiting for the server to be ready"));
    }

    #[test]
    fn exit_statuses_of_many_tools() {
        let cases = [
            ("failed with error: exit status 137", Some(137)),
            ("Error: exit status: 1", Some(1)),
            ("app-1 exited with code 125", Some(125)),
            ("did not complete successfully: exit code: 2", Some(2)),
            ("make: *** [Makefile:42: test-e2e] Error 2", Some(2)),
            ("panic: test timed out\nsignal: killed", Some(137)),
            ("signal: segmentation fault (core dumped)", Some(139)),
            ("exit status 0", None),
            ("the exit code is fine", None),
        ];
        for (line, code) in cases {
            assert_eq!(exit_status(&line.to_lowercase()), code, "{line}");
        }
    }

    #[test]
    fn failing_commands_of_kind_loadmaster_and_make() {
        assert_eq!(
            failed_command(r#"ERROR: failed to load image: command "podman exec -i n ctr images import -" failed with error: exit status 137"#).as_deref(),
            Some("podman exec -i n ctr images import -")
        );
        assert_eq!(
            failed_command("loadmaster: error: `podman save app:1` failed (exit status 125): boom")
                .as_deref(),
            Some("podman save app:1")
        );
        assert_eq!(
            failed_command("make: *** [Makefile:42: test-e2e-aianalysis] Error 2").as_deref(),
            Some("make test-e2e-aianalysis")
        );
    }

    #[test]
    fn the_exec_container_skips_flags() {
        assert_eq!(
            exec_container("podman exec --privileged -i e2e-control-plane ctr images import -")
                .as_deref(),
            Some("e2e-control-plane")
        );
        assert_eq!(
            exec_container("docker exec -e A=1 -u root n1 sh").as_deref(),
            Some("n1")
        );
        assert_eq!(exec_container("kubectl exec pod -- sh"), None);
    }

    #[test]
    fn timestamps_as_tools_write_them() {
        let cases = [
            (
                r#"time="2025-12-15T23:08:22Z" level=error"#,
                Some("2025-12-15T23:08:22Z"),
            ),
            (
                "2025-12-15T23:08:22.1234567Z ##[error]boom",
                Some("2025-12-15T23:08:22.1234567Z"),
            ),
            (
                "2025-12-15 23:08:22,123 ERROR x",
                Some("2025-12-15 23:08:22,123"),
            ),
            (
                "[ 8721.402371] Memory cgroup out of memory",
                Some("8721.402371"),
            ),
            (
                "[Mon Dec 15 23:08:21 2025] Out of memory",
                Some("Mon Dec 15 23:08:21 2025"),
            ),
            ("Dec 15 23:08:21 host kernel: x", Some("Dec 15 23:08:21")),
            (
                "E1215 23:08:22.123456   123 kubelet.go:1] x",
                Some("1215 23:08:22.123456"),
            ),
            ("[FAIL] a test", None),
            ("Creating cluster", None),
        ];
        for (line, time) in cases {
            assert_eq!(timestamp(line).as_deref(), time, "{line}");
        }
    }

    #[test]
    fn colours_and_redrawn_lines_are_cleaned() {
        assert_eq!(clean("\u{1b}[31m[FAIL]\u{1b}[0m x"), "[FAIL] x");
        assert_eq!(clean("copying 10%\rcopying 100%\r"), "copying 100%");
    }

    #[test]
    fn phase_follows_the_log() {
        let log = "Creating cluster \"e2e\" ...\n ✓ Preparing nodes\nbuilding image app\nsomething\nError: exit status 1\n";
        let case = scan(log, "run.log");
        assert_eq!(case.phase, Some(Phase::Build));
        assert_eq!(case.inputs, vec!["run.log (5 lines)".to_string()]);
        let started: Vec<_> = case
            .timeline
            .iter()
            .filter(|m| m.event.contains("starts"))
            .map(|m| m.line)
            .collect();
        assert_eq!(started, vec![Some(1), Some(3)]);
    }
}
