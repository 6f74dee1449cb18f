//! Tracing of child processes: every command the process layer starts is a
//! `command` span carrying its argv, and ends with a `finished` event that
//! says how long it took and how it ended (exit code, signal, timeout or
//! the watchdog's stop). `-v` / `RUST_LOG` show them (the subscriber is the
//! command line's).
//!
//! What a span shows of a command is redacted first ([`redacted`]): a
//! plan's build arguments and test environment, a `login`'s password or a
//! `curl -H 'Authorization: ...'` in a test command pass through argv and
//! env, and a trace is pasted into issues. Environment values are never
//! shown, only their names.

use super::Stopped;
use std::ffi::OsStr;
use std::fmt;
use std::process::{Command, ExitStatus};
use std::time::Instant;
use tracing::Span;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// A command being traced: its span, and when it started.
#[derive(Debug)]
pub(super) struct Traced {
    span: Span,
    started: Instant,
}

impl Traced {
    /// Opens the span of `command` (argv redacted; env names only at debug).
    pub(super) fn start(command: &Command) -> Traced {
        let span = tracing::info_span!("command", argv = %Shown(command));
        tracing::debug!(parent: &span, env = %EnvNames(command), "started");
        Traced {
            span,
            started: Instant::now(),
        }
    }

    /// Ends the span with how the command ended.
    pub(super) fn finished(&self, status: ExitStatus, timed_out: bool, stopped: Option<Stopped>) {
        let ended = Ended {
            status,
            timed_out,
            stopped,
        };
        let duration_ms = self.started.elapsed().as_millis() as u64;
        tracing::info!(parent: &self.span, exit = %ended, duration_ms, "finished");
    }

    /// Ends the span of a command that could not be started.
    pub(super) fn failed(&self, error: &std::io::Error) {
        tracing::info!(parent: &self.span, %error, "not started");
    }
}

/// How a command ended, in a word or two: `0`, `3`, `signal 9`,
/// `timed out (signal 9)`, `stalled (signal 9)`.
struct Ended {
    status: ExitStatus,
    timed_out: bool,
    stopped: Option<Stopped>,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::process::ExitStatusExt;
        let how = match (self.timed_out, self.stopped) {
            (true, _) => "timed out ",
            (false, Some(Stopped::Stalled(_))) => "stalled ",
            (false, Some(Stopped::Interrupted(_))) => "interrupted ",
            (false, None) => "",
        };
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) if how.is_empty() => write!(f, "{code}"),
            (Some(code), _) => write!(f, "{how}(exit {code})"),
            (None, Some(signal)) if how.is_empty() => write!(f, "signal {signal}"),
            (None, signal) => write!(f, "{how}(signal {})", signal.unwrap_or(0)),
        }
    }
}

/// A command's program and arguments, redacted, as one could paste them
/// into a shell (but for newlines).
struct Shown<'a>(&'a Command);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let argv: Vec<String> = std::iter::once(self.0.get_program())
            .chain(self.0.get_args())
            .map(lossy)
            .collect();
        // One record, one line: a script's newlines are shown as `\n`.
        f.write_str(&super::shell_words(&redacted(&argv)).replace('\n', "\\n"))
    }
}

/// The names of the variables a command's environment sets or removes,
/// each shown without its value.
struct EnvNames<'a>(&'a Command);

impl fmt::Display for EnvNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .0
            .get_envs()
            .map(|(name, value)| match value {
                Some(_) => format!("{}={REDACTED}", lossy(name)),
                None => format!("-{}", lossy(name)),
            })
            .collect();
        f.write_str(&names.join(" "))
    }
}

fn lossy(text: &OsStr) -> String {
    text.to_string_lossy().into_owned()
}

/// Words in a flag or variable name that say its value is a secret.
const SECRET_WORDS: [&str; 8] = [
    "password",
    "passwd",
    "token",
    "secret",
    "creds",
    "credential",
    "auth",
    "apikey",
];

/// Whether a flag or variable name (`--registry-password`, `NPM_TOKEN`)
/// names a secret.
fn names_secret(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `argv` with the values of secrets replaced by [`REDACTED`]:
///
/// - the value of a flag that names a secret (`--password X`,
///   `--password=X`, `--token`, `--creds`, `--registry-password`), and of
///   `-p` in a `login`; flags that take no value (`--password-stdin`) and
///   those that name a file (`--password-file`) are left as they are;
/// - `NAME=value` whose name names a secret (`--build-arg NPM_TOKEN=...`,
///   `-e API_TOKEN=...`, `--from-literal=password=...`);
/// - the value of an HTTP header that carries credentials
///   (`Authorization: Bearer ...`, `Cookie: ...`);
/// - the password of a URL (`https://user:PASSWORD@host/`).
pub fn redacted(argv: &[String]) -> Vec<String> {
    let login = argv.iter().any(|word| word == "login");
    let mut shown = Vec::with_capacity(argv.len());
    let mut hide_next = false;
    for word in argv {
        if std::mem::take(&mut hide_next) {
            shown.push(REDACTED.to_string());
            continue;
        }
        if let Some(flag) = word.strip_prefix('-') {
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            let takes_secret =
                (names_secret(name) && !names_no_value(name)) || (login && name == "p");
            if takes_secret {
                match value {
                    Some(_) => shown.push(format!("-{name}={REDACTED}")),
                    None => {
                        shown.push(word.clone());
                        hide_next = true;
                    }
                }
                continue;
            }
        }
        shown.push(redacted_word(word));
    }
    shown
}

/// A flag whose value is not the secret itself: it takes none
/// (`--password-stdin`) or names where the secret is (`--password-file`,
/// `--authfile`).
fn names_no_value(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["stdin", "file", "path", "dir"]
        .iter()
        .any(|end| name.ends_with(end))
}

/// One word that is not a secret flag: a header, a `NAME=value` or a URL
/// with a password in it loses the secret part.
fn redacted_word(word: &str) -> String {
    if let Some((name, _)) = word.split_once(':')
        && is_header_name(name)
        && ["authorization", "cookie", "token", "auth"]
            .iter()
            .any(|secret| name.to_ascii_lowercase().contains(secret))
    {
        return format!("{name}: {REDACTED}");
    }
    // The name of an assignment is what precedes its `=` back to the
    // word's start, a `,` or an earlier `=` (`--from-literal=password=x`).
    let mut name_start = 0;
    for (at, c) in word.char_indices() {
        match c {
            '=' if names_secret(&word[name_start..at]) => {
                return format!("{}={REDACTED}", &word[..at]);
            }
            '=' | ',' => name_start = at + 1,
            _ => {}
        }
    }
    if let Some((scheme, rest)) = word.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
        && !userinfo.contains('/')
    {
        return format!("{scheme}://{user}:{REDACTED}@{host}");
    }
    word.to_string()
}

/// An HTTP header's name: a token of letters, digits and dashes.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a debug-level subscriber prints while a test's body runs, for
/// the tests of modules that trace.
#[cfg(test)]
pub(crate) mod capture {
    /// What a subscriber wrote, as text.
    #[derive(Clone, Default)]
    struct Written(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `body` with a debug-level subscriber; returns what it printed.
    pub(crate) fn traced(body: impl FnOnce()) -> String {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        String::from_utf8(written.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::capture::traced;
    use super::*;

    fn argv(words: &str) -> Vec<String> {
        words.split(' ').map(str::to_string).collect()
    }

    fn shown(words: &[&str]) -> String {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        redacted(&words).join(" ")
    }

    #[test]
    fn flags_that_name_a_secret_lose_their_value() {
        assert_eq!(
            redacted(&argv("docker login -u ci -p hunter2 registry.example")),
            argv("docker login -u ci -p <redacted> registry.example")
        );
        assert_eq!(
            redacted(&argv("podman login --password=hunter2 --username ci r")),
            argv("podman login --password=<redacted> --username ci r")
        );
        assert_eq!(
            redacted(&argv("kubectl --token abc.def get pods")),
            argv("kubectl --token <redacted> get pods")
        );
        assert_eq!(
            redacted(&argv("podman push --creds ci:hunter2 app docker://r/app")),
            argv("podman push --creds <redacted> app docker://r/app")
        );
        assert_eq!(
            redacted(&argv(
                "kubectl create secret docker-registry r --docker-password=hunter2"
            )),
            argv("kubectl create secret docker-registry r --docker-password=<redacted>")
        );
    }

    #[test]
    fn flags_without_the_secret_itself_are_kept() {
        // The next word is the registry, not a password.
        assert_eq!(
            redacted(&argv(
                "docker login --password-stdin -u ci registry.example"
            )),
            argv("docker login --password-stdin -u ci registry.example")
        );
        assert_eq!(
            redacted(&argv("podman push --authfile /run/auth.json app")),
            argv("podman push --authfile /run/auth.json app")
        );
        // `-p` is a port outside a login.
        assert_eq!(
            redacted(&argv("docker run -p 8080:80 nginx")),
            argv("docker run -p 8080:80 nginx")
        );
    }

    #[test]
    fn secret_assignments_headers_and_url_passwords_lose_their_value() {
        assert_eq!(
            shown(&[
                "docker",
                "build",
                "--build-arg",
                "NPM_TOKEN=YWJj==",
                "--build-arg",
                "V=1"
            ]),
            "docker build --build-arg NPM_TOKEN=<redacted> --build-arg V=1"
        );
        assert_eq!(
            shown(&[
                "kubectl",
                "create",
                "secret",
                "generic",
                "s",
                "--from-literal=password=x"
            ]),
            "kubectl create secret generic s --from-literal=password=<redacted>"
        );
        assert_eq!(
            shown(&[
                "curl",
                "-H",
                "Authorization: Bearer abc",
                "-H",
                "Accept: */*"
            ]),
            "curl -H Authorization: <redacted> -H Accept: */*"
        );
        assert_eq!(
            shown(&["git", "clone", "https://ci:hunter2@git.example/r.git"]),
            "git clone https://ci:<redacted>@git.example/r.git"
        );
        // What holds no secret stays whole.
        assert_eq!(
            shown(&["kubectl", "wait", "--for=condition=Ready", "pod/a"]),
            "kubectl wait --for=condition=Ready pod/a"
        );
    }

    #[test]
    fn a_command_is_a_span_with_its_argv_duration_and_exit() {
        let lines = traced(|| {
            let mut command = Command::new("sh");
            command.args(["-c", "true\nexit 3"]);
            super::super::run(&mut command, std::time::Duration::from_secs(10)).unwrap();
        });
        assert!(
            lines.contains("command{argv=sh -c 'true\\nexit 3'}") && lines.contains("started"),
            "{lines}"
        );
        assert_eq!(lines.lines().count(), 2, "{lines}");
        let finished = lines.lines().find(|l| l.contains("finished")).unwrap();
        assert!(
            finished.contains("exit=3") && finished.contains("duration_ms="),
            "{lines}"
        );
    }

    #[test]
    fn a_traced_command_shows_no_secret_of_its_argv_or_env() {
        let lines = traced(|| {
            let mut command = Command::new("sh");
            command
                .args([
                    "-c",
                    "exit 0",
                    "sh",
                    "--password",
                    "hunter2",
                    "NPM_TOKEN=hunter3",
                ])
                .env("KUBECONFIG", "/home/ci/hunter4");
            super::super::run(&mut command, std::time::Duration::from_secs(10)).unwrap();
        });
        assert!(!lines.contains("hunter"), "{lines}");
        assert!(
            lines.contains("--password '<redacted>' 'NPM_TOKEN=<redacted>'")
                && lines.contains("env=KUBECONFIG=<redacted>"),
            "{lines}"
        );
    }

    #[test]
    fn how_a_command_ended_reads_as_a_word_or_two() {
        use std::os::unix::process::ExitStatusExt;
        let ended = |raw, timed_out, stopped| {
            Ended {
                status: ExitStatus::from_raw(raw),
                timed_out,
                stopped,
            }
            .to_string()
        };
        assert_eq!(ended(3 << 8, false, None), "3");
        assert_eq!(ended(9, false, None), "signal 9");
        assert_eq!(ended(9, true, None), "timed out (signal 9)");
        let stall = Some(Stopped::Stalled(std::time::Duration::from_secs(1)));
        assert_eq!(ended(9, false, stall), "stalled (signal 9)");
    }
}
