//! The words both renderers use for an event, and fitting them to a line:
//! [`one_line`] for logs (one event, one line), [`wrap`] and [`shorten`] for
//! a terminal of a given width. Widths are counted in characters: what
//! loadmaster prints (names, numbers, `✓`, the spinner) is one column each.

use super::Event;
use crate::deliver::{NodeReport, NodeResult};
use crate::journal::{Outcome, StepStatus};
use crate::push::{BlobStep, PushReport};
use crate::units::bytes;

/// A transfer's throughput and time left, from the bytes moved since it
/// began (clock times in milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    total: Option<u64>,
    started_ms: u64,
}

impl Rate {
    pub fn start(total: Option<u64>, now_ms: u64) -> Rate {
        Rate {
            total,
            started_ms: now_ms,
        }
    }

    /// "512.0 MiB of 1.0 GiB, 210.3 MiB/s, ETA 3s" after `done` bytes.
    pub fn describe(&self, done: u64, now_ms: u64) -> String {
        let seconds = (now_ms.saturating_sub(self.started_ms) as f64 / 1000.0).max(0.001);
        let per_second = done as f64 / seconds;
        let mut text = match self.total {
            Some(total) => format!("{} of {}", bytes(done), bytes(total)),
            None => bytes(done),
        };
        text.push_str(&format!(", {}/s", bytes(per_second as u64)));
        if let Some(total) = self.total.filter(|&t| t > done && per_second > 0.0) {
            text.push_str(&format!(", ETA {:.0}s", (total - done) as f64 / per_second));
        }
        text
    }
}

/// "build/app:1 failed (4.3 s): the first line of its error"
pub fn step_finished(
    step: &str,
    outcome: Outcome,
    duration_ms: u64,
    error: Option<&str>,
) -> String {
    let mut line = format!(
        "{step} {} ({})",
        StepStatus::from(outcome).word(),
        crate::units::seconds(duration_ms)
    );
    if let Some(first) = error.and_then(|e| e.lines().next()) {
        line.push_str(": ");
        line.push_str(first);
    }
    line
}

/// "cluster: reusing kind cluster e2e", or the message alone for the run's.
pub fn note(step: Option<&str>, message: &str) -> String {
    match step {
        Some(step) => format!("{step}: {message}"),
        None => message.to_string(),
    }
}

/// What one node's load came to.
pub fn node_loaded(report: &NodeReport) -> String {
    let what = match (&report.error, report.result) {
        (Some(error), _) => format!("FAILED: {error}"),
        (None, NodeResult::AlreadyPresent) => format!(
            "already there, nothing sent ({:.1}s)",
            report.duration_ms as f64 / 1000.0
        ),
        (None, _) => format!(
            "{} ({} path): {} in {} blobs sent, {} blobs already there, {:.1}s",
            report.result,
            report.path,
            bytes(report.bytes_sent),
            report.blobs_sent,
            report.blobs_skipped,
            report.duration_ms as f64 / 1000.0
        ),
    };
    format!("{} on {}: {what}", report.image, report.node)
}

/// "node-a 12.0 MiB, node-b 3.0 MiB"
pub fn sent_list(sent: &[(&str, u64)]) -> String {
    let nodes: Vec<String> = sent
        .iter()
        .map(|(node, n)| format!("{node} {}", bytes(*n)))
        .collect();
    nodes.join(", ")
}

/// What pushing one image came to.
pub fn pushed(report: &PushReport) -> String {
    format!(
        "pushed {} as {}@{}: {} blob(s) uploaded ({}), {} already there, {} mounted, {} retries, {:.1}s",
        report.image,
        report.pushed,
        report.digest,
        report.blobs_uploaded,
        bytes(report.bytes_uploaded),
        report.blobs_skipped,
        report.blobs_mounted,
        report.retries.len(),
        report.duration_ms as f64 / 1000.0
    )
}

/// " (12.0 MiB)" for a size that is known.
fn size(total: Option<u64>) -> String {
    total
        .map(|t| format!(" ({})", bytes(t)))
        .unwrap_or_default()
}

/// The line an event is, for the events that are a line of their own
/// wherever they show (not a step's start or end, not bytes moving).
pub fn described(event: &Event<'_>) -> Option<String> {
    Some(match *event {
        Event::Note { step, message, .. } => note(step, message),
        Event::StepCancelled { step, because } => {
            note(Some(step), &format!("cancelled: {because}"))
        }
        Event::LoadPath {
            image,
            path,
            reason,
            ..
        } => format!("{image}: {path} path ({reason})"),
        Event::LoadStarted {
            image,
            nodes,
            total,
            ..
        } => format!("loading {image}{} into {}", size(total), nodes.join(", ")),
        Event::NodeInventory {
            image,
            node,
            blobs,
            already_present,
            ..
        } => {
            let note = if already_present {
                "; the image is already there"
            } else {
                ""
            };
            format!("{image} on {node}: the node holds {blobs} blobs{note}")
        }
        Event::NodeLoaded { report, .. } => node_loaded(report),
        Event::PushStarted {
            image,
            destination,
            size: total,
            ..
        } => format!("pushing {image}{} to {destination}", size(total)),
        Event::PushBlob {
            image,
            digest,
            blob,
            ..
        } => {
            let what = match blob {
                BlobStep::Present => "already in the registry".to_string(),
                BlobStep::Mounted { from } => format!("mounted from {from}"),
                BlobStep::Uploaded { bytes: n } => format!("uploaded, {}", bytes(n)),
            };
            format!("{image}: blob sha256:{} {what}", &digest.hex()[..12])
        }
        Event::PushReading { image, missing, .. } => {
            format!("{image}: reading the image from the engine for {missing} missing blob(s)")
        }
        Event::PushRetry { retry, .. } => format!("retry: {retry}"),
        Event::Pushed { report, .. } => pushed(report),
        // A failed push is its step's error, or the command's.
        Event::StepStarted { .. }
        | Event::StepFinished { .. }
        | Event::PushFailed { .. }
        | Event::Recorded(_)
        | Event::Sampled(_)
        | Event::LoadStreaming { .. }
        | Event::PushStreaming { .. } => return None,
    })
}

/// `text` on one line: line breaks become `; `, other control characters
/// (a tool's colour codes) are dropped, so that a log keeps one event per
/// line.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    if let Some(first) = lines.next() {
        push_visible(&mut out, first);
        for line in lines {
            out.push_str("; ");
            push_visible(&mut out, line.trim_start());
        }
    }
    out
}

/// Appends `text` without terminal escape sequences and control characters.
fn push_visible(out: &mut String, text: &str) {
    for c in without_escapes(text).chars() {
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

/// `text` without terminal escape sequences (a tool's colours, titles,
/// links): CSI `ESC [ … final byte`, OSC `ESC ] … BEL` or `ESC ] … ESC \\`,
/// and any other `ESC x`. Other control characters stay.
pub fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        chars.next_if_eq(&'\\');
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `text` cut to `width` columns, ending in `…` when something was cut.
pub fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        short.push('…');
    }
    short
}

/// `text` (one line) wrapped at spaces into lines of at most `width`
/// columns, the lines after the first indented by `indent` spaces; a word
/// longer than a line is cut where the line ends.
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let width = width.max(indent + 10);
    let mut lines: Vec<String> = Vec::new();
    // The current line, without its indent; the first keeps the text's.
    let lead = text.len() - text.trim_start_matches(' ').len();
    let mut line = " ".repeat(lead.min(indent));
    let finish = |lines: &mut Vec<String>, line: String| {
        let indent = if lines.is_empty() { 0 } else { indent };
        lines.push(format!("{}{line}", " ".repeat(indent)));
    };
    for mut word in text.split_whitespace() {
        loop {
            let room = if lines.is_empty() {
                width
            } else {
                width - indent
            };
            let used = line.chars().count();
            let space = usize::from(!line.trim_start().is_empty());
            if used + space + word.chars().count() <= room {
                if space > 0 {
                    line.push(' ');
                }
                line.push_str(word);
                break;
            }
            if space == 0 {
                // Longer than a whole line: cut it there.
                let cut = word.char_indices().nth(room).map_or(word.len(), |(i, _)| i);
                line.push_str(&word[..cut]);
                word = &word[cut..];
            }
            finish(&mut lines, std::mem::take(&mut line));
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.trim_start().is_empty() || lines.is_empty() {
        finish(&mut lines, line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_lines_and_drops_colour_codes() {
        assert_eq!(
            one_line("\u{1b}[31merror\u{1b}[0m: a\n\n  b\r\n\tc\u{7}"),
            "error: a; b; c"
        );
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn shorten_marks_the_cut() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_indents_what_follows() {
        let text = "deliver/app:1 failed (3.0 s): loading app:1 into node e2e-worker failed";
        let lines = wrap(text, 30, 4);
        assert_eq!(
            lines,
            [
                "deliver/app:1 failed (3.0 s):",
                "    loading app:1 into node",
                "    e2e-worker failed"
            ]
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 30));
        assert_eq!(wrap("short", 30, 2), ["short"]);
        assert_eq!(wrap("", 30, 2), [""]);
        assert_eq!(wrap("  a note b", 14, 4), ["  a note b"]);
        assert_eq!(
            wrap("  a note that wraps here", 14, 4),
            ["  a note that", "    wraps here"]
        );
    }

    #[test]
    fn wrap_cuts_a_word_longer_than_the_line() {
        let long = "x".repeat(50);
        let lines = wrap(&format!("see {long} there"), 20, 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        let joined: String = lines.iter().map(|l| l.trim()).collect();
        assert_eq!(joined, format!("see{long}there"));
    }
}
