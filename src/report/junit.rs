//! The JUnit XML report: one test case per step (class `loadmaster`), so
//! that a CI system lists the environment's steps beside the suite's own
//! results. A failed step is a `failure`, a step that never ended an
//! `error` ("interrupted"), a skipped step `skipped`. The shape follows the
//! widely used Jenkins/Ant schema (`tests/fixtures/junit.xsd`).
//!
//! Step errors often carry a tool's stderr, coloured for a terminal. XML 1.0
//! cannot hold C0 control characters at all (not even as `&#27;`), so
//! [`esc`] drops terminal escape sequences and shows any other control
//! character as U+FFFD.

use super::RunReport;
use crate::journal::StepStatus;
use std::fmt::Write;

/// The report as JUnit XML.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _ =` keeps that visible.
    let _ = write_suite(&mut out, report);
    out
}

fn count(r: &RunReport, status: StepStatus) -> usize {
    r.run.steps.iter().filter(|s| s.status == status).count()
}

fn write_suite(out: &mut String, r: &RunReport) -> std::fmt::Result {
    let run = &r.run;
    let (tests, failures, errors, skipped) = (
        run.steps.len(),
        count(r, StepStatus::Failed),
        count(r, StepStatus::Interrupted),
        count(r, StepStatus::Skipped),
    );
    let time = run.duration_ms().unwrap_or(0) as f64 / 1000.0;
    let name = format!("loadmaster run {}", run.id);
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<testsuites name=\"loadmaster\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    )?;
    // The Ant schema's timestamp has no zone and no fraction.
    let timestamp = run
        .started
        .map(|t| t.to_string().chars().take(19).collect::<String>());
    write!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\"",
        esc(&name)
    )?;
    if let Some(timestamp) = timestamp {
        write!(out, " timestamp=\"{timestamp}\"")?;
    }
    writeln!(out, ">")?;
    writeln!(out, "    <properties>")?;
    writeln!(
        out,
        "      <property name=\"cluster\" value=\"{}\"/>",
        esc(run.cluster.as_deref().unwrap_or("unknown"))
    )?;
    writeln!(
        out,
        "      <property name=\"result\" value=\"{}\"/>",
        r.result()
    )?;
    writeln!(out, "    </properties>")?;
    for step in &run.steps {
        let time = r.step_end(step).since(step.started) as f64 / 1000.0;
        write!(
            out,
            "    <testcase name=\"{}\" classname=\"loadmaster\" time=\"{time:.3}\"",
            esc(&step.id)
        )?;
        let error = step.error.as_deref().unwrap_or(step.status.word());
        match step.status {
            StepStatus::Succeeded => writeln!(out, "/>")?,
            StepStatus::Skipped => writeln!(out, ">\n      <skipped/>\n    </testcase>")?,
            StepStatus::Failed => {
                let body = match &r.diagnosis {
                    Some(triage) => format!("{error}\n\nDiagnosis: {}", triage.summary),
                    None => error.to_string(),
                };
                writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"step-failed\">{}</failure>\n    </testcase>",
                    esc(error),
                    esc(&body)
                )?
            }
            StepStatus::Interrupted => writeln!(
                out,
                ">\n      <error message=\"{}\" type=\"interrupted\">{}</error>\n    </testcase>",
                esc(step
                    .error
                    .as_deref()
                    .unwrap_or("the step never ended (the run was killed)")),
                esc(&r.missing.join("\n"))
            )?,
        }
    }
    writeln!(
        out,
        "    <system-out>{}</system-out>",
        esc(&format!("run directory: {}", run.dir.display()))
    )?;
    writeln!(out, "    <system-err></system-err>")?;
    writeln!(out, "  </testsuite>\n</testsuites>")
}

/// Text escaped for XML content and attribute values, without what XML 1.0
/// forbids: ANSI escape sequences (`ESC [ … final`, `ESC ] … BEL`, `ESC x`)
/// are dropped, other control characters but tab, newline and carriage
/// return become U+FFFD.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC (a title, a hyperlink): up to BEL or ESC \\.
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
            },
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() && c < '\u{80}' => out.push('\u{fffd}'),
            '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_hold() {
        assert_eq!(esc("<a b=\"c\">&'"), "&lt;a b=&quot;c&quot;&gt;&amp;&apos;");
        assert_eq!(esc("\u{1b}[1;31mred\u{1b}[0m"), "red");
        assert_eq!(
            esc("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\ done"),
            "link done"
        );
        assert_eq!(
            esc("a\u{0}b\u{8}c\td\ne\u{7f}"),
            "a\u{fffd}b\u{fffd}c\td\ne\u{fffd}"
        );
        assert_eq!(esc("trailing \u{1b}"), "trailing ");
    }
}
