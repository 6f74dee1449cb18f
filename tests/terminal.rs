//! The terminal renderer in a real terminal: `loadmaster load` into a
//! two-node test cluster, run in an 80-column tmux pane (Debian's `tmux`),
//! its screen read back with `capture-pane -J` (wrapped lines joined, so a
//! line the renderer let run past the edge shows as longer than 80). No
//! line may be longer, no escape sequence may show, each node's outcome
//! shows once, and the redrawn frame is gone at the end.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    Layer, NodeOptions, TempDir, TestCluster, TestImage, engines_under_test, unique_name,
};

const MIB: u64 = 1 << 20;
const WIDTH: usize = 80;
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A tmux server of the test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `script` in a detached pane `WIDTH` columns wide.
    fn run(script: &Path) -> Tmux {
        let tmux = Tmux {
            socket: unique_name("lmt-tmux"),
        };
        let width = WIDTH.to_string();
        let status = tmux
            .command(&["new-session", "-d", "-s", "lmt", "-x", &width, "-y", "60"])
            .arg(format!("sh {}", script.display()))
            .status()
            .expect("tmux (Debian's tmux; .ci/run installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args);
        command
    }

    /// The pane's whole history and screen, wrapped lines joined.
    fn capture(&self) -> String {
        let output = self
            .command(&[
                "capture-pane",
                "-p",
                "-J",
                "-t",
                "lmt",
                "-S",
                "-",
                "-E",
                "-",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The capture once `marker` shows, within `limit`.
    fn wait_for(&self, marker: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let text = self.capture();
            if text.contains(marker) {
                return text;
            }
            assert!(
                started.elapsed() < limit,
                "no {marker:?} after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command(&["kill-server"]).output();
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn load_in_an_80_column_terminal_fits_and_is_not_garbled() {
    for kind in engines_under_test() {
        let cluster = TestCluster::start(kind, 1, &NodeOptions::default());
        let image = TestImage::named(kind);
        image.build(&[
            Layer {
                bytes: 24 * MIB,
                seed: 81,
            },
            Layer {
                bytes: 4 * MIB,
                seed: 82,
            },
        ]);
        let dir = TempDir::new("lmt-tmux");
        let script = dir.path.join("run.sh");
        std::fs::write(
            &script,
            format!(
                "unset DOCKER_HOST CONTAINER_HOST LOADMASTER_ENGINE KIND_EXPERIMENTAL_PROVIDER\nexport LOADMASTER_ROOT='{}'\n'{}' --engine {kind} load --cluster {} {}\necho \"LMT-EXIT=$?\"\nsleep 600\n",
                support::TEST_RUNS,
                env!("CARGO_BIN_EXE_loadmaster"),
                cluster.name,
                image.name
            ),
        )
        .unwrap();
        let tmux = Tmux::run(&script);
        let text = tmux.wait_for("LMT-EXIT=", Duration::from_secs(180));
        drop(tmux);
        assert!(
            text.contains("LMT-EXIT=0"),
            "{kind}: the load failed:\n{text}"
        );

        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        for line in &lines {
            assert!(
                line.chars().count() <= WIDTH,
                "{kind}: a line of {} columns:\n{line}\n\n{text}",
                line.chars().count()
            );
            assert!(
                !line.contains('\u{1b}') && !line.contains("[K") && !line.contains("[1A"),
                "{kind}: an escape sequence shows: {line:?}"
            );
            assert!(
                !line.chars().any(|c| SPINNER.contains(&c)),
                "{kind}: the frame was left on the screen: {line:?}\n{text}"
            );
        }
        // The outcome lines, wrapped, read as one.
        let flowing = lines
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for node in &cluster.nodes {
            let outcome = format!("{} on {node}: loaded (save path)", image.name);
            assert_eq!(
                flowing.matches(&outcome).count(),
                1,
                "{kind}: {outcome:?} once:\n{text}"
            );
        }
        assert!(
            lines.iter().any(|l| l.chars().count() > 60),
            "{kind}: the test had no long line to fit:\n{text}"
        );
    }
}
