//! The engines' own log lines on stderr, told apart from their answers.
//!
//! docker and podman log through logrus: `time="…" level=info msg="…"`.
//! Lines at info, debug or trace level (podman's `[graphdriver] using
//! prior storage driver: overlay` after a storage change) say nothing
//! about why a command failed and, quoted in an error, bury its real
//! cause; they go to the trace (`-vv`, `RUST_LOG=debug`) instead. Warnings
//! and errors matter and are kept, labelled with the
//! engine (`podman: warning: …`), since the message they land in is
//! loadmaster's. Everything else (the CLI's own `Error: …`) is kept as
//! written. This is the one place engine stderr is classified.

use super::EngineKind;

/// What one stderr line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A log line below warning: dropped from what is shown.
    Chatter,
    /// A log line at warning level or above: its level and message.
    Log { level: String, message: String },
    /// Anything else: the engine's answer.
    Answer,
}

/// Classifies one stderr line.
pub fn classify(line: &str) -> Line {
    let Some(level) = field(line, "level") else {
        return Line::Answer;
    };
    match level.as_str() {
        "info" | "debug" | "trace" => Line::Chatter,
        "warning" | "warn" | "error" | "fatal" | "panic" => Line::Log {
            level: if level == "warn" {
                "warning".into()
            } else {
                level
            },
            message: field(line, "msg").unwrap_or_else(|| line.trim().to_string()),
        },
        _ => Line::Answer,
    }
}

/// `stderr` as a message shows it: chatter left out, warnings and errors
/// labelled with the engine, answers as they are.
pub fn shown(engine: EngineKind, stderr: &str) -> String {
    stderr
        .lines()
        .filter_map(|line| match classify(line) {
            // Kept in the trace (`-vv`), out of the message.
            Line::Chatter => {
                tracing::debug!(%engine, line, "engine log line");
                None
            }
            Line::Log { level, message } => Some(format!("{engine}: {level}: {message}")),
            Line::Answer => Some(line.to_string()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of `key=value` or `key="quoted value"` in a logrus line; None
/// when the line does not carry it as a logrus field (at the start or
/// after a space).
fn field(line: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    let at = line
        .match_indices(&prefix)
        .find(|(at, _)| *at == 0 || line[..*at].ends_with(' '))?
        .0;
    let rest = &line[at + prefix.len()..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => return Some(value),
                c => value.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::trace::capture::traced;

    #[test]
    fn chatter_left_out_of_a_message_is_in_the_trace() {
        let mut message = String::new();
        let trace = traced(|| message = shown(EngineKind::Podman, GRAPHDRIVER));
        assert_eq!(message, "");
        assert!(trace.contains("engine log line"), "{trace}");
        assert!(trace.contains("using prior storage driver"), "{trace}");
    }

    // Recorded from podman 5 (`podman --log-level=info info` after a
    // storage change) and docker 20.10's CLI.
    const GRAPHDRIVER: &str = r#"time="2026-12-02T18:13:30Z" level=info msg="[graphdriver] using prior storage driver: overlay""#;
    const JOBS: &str =
        r#"time="2026-12-02T18:13:30Z" level=info msg="Setting parallel job count to 7""#;
    const WARNING: &str = r#"time="2026-12-02T18:13:30Z" level=warning msg="The cgroupv2 manager is set to systemd but there is no systemd user session available""#;

    #[test]
    fn chatter_warnings_and_answers_are_told_apart() {
        assert_eq!(classify(GRAPHDRIVER), Line::Chatter);
        assert_eq!(
            classify(WARNING),
            Line::Log {
                level: "warning".into(),
                message: "The cgroupv2 manager is set to systemd but there is no systemd user session available".into(),
            }
        );
        assert_eq!(
            classify("Error: localhost/app:1: image not known"),
            Line::Answer
        );
        // "level=" inside an answer's words is not a log field.
        assert_eq!(classify("Error: bad sublevel=3"), Line::Answer);
    }

    #[test]
    fn shown_drops_chatter_and_labels_warnings_with_the_engine() {
        let stderr =
            format!("{GRAPHDRIVER}\n{JOBS}\n{WARNING}\nError: localhost/app:1: image not known");
        assert_eq!(
            shown(EngineKind::Podman, &stderr),
            "podman: warning: The cgroupv2 manager is set to systemd but there is no systemd user session available\nError: localhost/app:1: image not known"
        );
    }
}
