//! The command line: argument parsing, dispatch, and exit codes.
//!
//! Each command lives in its own file and returns a [`CommandError`]; this
//! module turns that into a message on stderr and an exit code that means
//! something to scripts:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the operation failed (e.g. no such cluster, a node is not running) |
//! | 2 | the command line or an input file is wrong |
//! | 3 | no usable container engine (not installed, not running) |
//!
//! `doctor` reports a missing engine as a failed check (1), not as 3.
//! `test` and `run` exit with the test's own code when the test failed, and
//! with 128 + N when signal N stopped the run.

mod doctor;
mod inspect;
mod load;
mod push;
mod record;
mod report;
mod run;
mod runs;
mod schema;
mod triage;

use crate::cluster::ClusterError;
use crate::deliver::{DeliverError, PathChoice, Source};
use crate::engine::{self, EngineChoice, EngineError, SelectError, Selection};
use crate::push::PushError;
use crate::runner::{Phase, progress};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "loadmaster",
    version,
    about = "Local Kubernetes E2E environments (kind on docker or podman) that come up, and say why when they don't."
)]
pub struct Cli {
    /// Container engine: auto, docker or podman. Without it: LOADMASTER_ENGINE,
    /// then KIND_EXPERIMENTAL_PROVIDER, then whichever engine answers.
    #[arg(long, global = true, value_enum)]
    engine: Option<EngineChoice>,

    /// Seconds a stream (an engine's `save`, a node's import) may wait for
    /// its other side before the command is stopped, naming the side that
    /// stalled; waits add up while the stream moves less than 4 MiB, so a
    /// crawl counts as a stall.
    #[arg(long, global = true, value_name = "SECONDS", env = "LOADMASTER_STALL_TIMEOUT",
          default_value_t = crate::process::DEFAULT_STALL_LIMIT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    stall_timeout: u64,

    /// Trace every engine, node, kind and kubectl command (argv, duration,
    /// how it ended) and each step of a run on stderr: `-v` once for
    /// commands and steps, twice for more (each command's start and the
    /// names of the environment it was given). Without it, `RUST_LOG`
    /// (`RUST_LOG=loadmaster=debug`) decides. Secrets in argv and every
    /// environment value are shown as `<redacted>`.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the selected engine, why it was chosen, and what it can give
    /// containers (for a podman machine or Docker Desktop: the VM's figures).
    Engine {
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Load images into every node of a kind cluster: streamed from the
    /// engine, only the layers each node lacks, verified on every node.
    Load {
        /// Images as the engine names them (`app:1`); on the nodes they get
        /// the name Kubernetes resolves (`docker.io/library/app:1`).
        images: Vec<String>,
        /// The kind cluster (default: the only one there is, else `kind`).
        #[arg(long)]
        cluster: Option<String>,
        /// Only these nodes (comma-separated container names).
        #[arg(long, value_delimiter = ',')]
        nodes: Option<Vec<String>>,
        /// Load from a docker-archive or OCI-layout tar (`-`: standard input)
        /// instead of the engine: every image it names, or only the IMAGEs
        /// given.
        #[arg(long, value_name = "FILE")]
        archive: Option<String>,
        /// How many nodes one read of the image feeds at once; more nodes
        /// take further reads.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        parallel: u16,
        /// How images leave the engine: `save` exports every layer; `push`
        /// sends loadmaster's loopback registry only the layers the nodes
        /// lack (compressing new ones); `auto` pushes when the nodes hold an
        /// earlier push of the image, else saves.
        #[arg(long, value_enum, default_value_t = PathChoice::Auto)]
        path: PathChoice,
        /// With --archive: the platform to load of an image the archive
        /// holds for several (default: this machine's); one the archive
        /// lacks is an error naming those it holds.
        #[arg(long, value_name = "OS/ARCH[/VARIANT]", requires = "archive")]
        platform: Option<String>,
        /// Keep the images the engine streamed in this directory, and give
        /// nodes that lack an image it holds whole the image from there
        /// without reading the engine (a cluster created again).
        #[arg(long, value_name = "DIR")]
        image_cache: Option<PathBuf>,
        /// The size --image-cache is kept within (least recently used
        /// blobs go first), like 20GiB.
        #[arg(long, value_name = "SIZE", requires = "image_cache", value_parser = crate::plan::Size::parse)]
        image_cache_max_size: Option<crate::plan::Size>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Where the load is recorded as a run, for `runs`, `report` and
        /// `triage`.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
    },
    /// Push images to a registry (OCI distribution): only the blobs it
    /// lacks, streamed from the engine, retried on transient errors, with
    /// the credentials of `docker login` / `podman login`.
    Push {
        /// Images as the engine names them (`app:1`); each goes to
        /// HOST/PREFIX/REPO:TAG (`app:1` to HOST/PREFIX/app:1).
        images: Vec<String>,
        /// HOST[:PORT][/PREFIX]. HTTPS, except plain HTTP for loopback
        /// hosts (127.0.0.0/8, ::1, localhost) or with --allow-http.
        #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
        registry: String,
        /// Push the image named from a docker-archive or OCI-layout tar
        /// (`-`: standard input) instead of the engine.
        #[arg(long, value_name = "FILE")]
        archive: Option<String>,
        /// Allow plain HTTP to a registry that is not on loopback (only on
        /// a network you trust).
        #[arg(long)]
        allow_http: bool,
        /// The CA certificates (`*.crt`, PEM) the registry's TLS
        /// certificate is checked against; default: the registry's
        /// directory in /etc/docker/certs.d or /etc/containers/certs.d,
        /// else the public web roots.
        #[arg(long, value_name = "DIR")]
        cert_dir: Option<std::path::PathBuf>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Where the push is recorded as a run, for `runs`, `report` and
        /// `triage`.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
    },
    /// List kind clusters, their nodes, roles and states, on docker and podman.
    /// With a NAME: that cluster only, failing (exit 1) when it does not exist
    /// on the selected engine or one of its nodes is not running.
    Clusters {
        name: Option<String>,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Diagnose a failed run, recorded (RUN) or from its log (kind, podman,
    /// docker, make, go test, loadmaster): root cause, confidence, evidence,
    /// the fix. Needs no
    /// engine. Commands are for `--engine docker|podman`, else the engine the
    /// log shows, else both. Exit 0 whenever a diagnosis was made, "no
    /// failure found" included.
    Triage {
        /// A recorded run (an id from `runs`, or a run directory); the
        /// latest without it or `--log`.
        #[arg(conflicts_with = "log")]
        run: Option<String>,
        /// A log to read instead (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Where runs are recorded.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
        #[arg(long, short, value_enum, default_value_t = triage::Report::Markdown)]
        output: triage::Report,
    },
    /// Pre-flight: measure the engine (its VM's, not the laptop's) against
    /// what the environment needs, with the fix for every problem. Exit 1
    /// when a check fails, 2 when the doctor could not run.
    Doctor {
        /// A plan: its cluster, kind config, images, builds and budget are
        /// what the machine is measured against.
        #[arg(long, short = 'f', value_name = "PLAN", conflicts_with_all = ["cluster", "kind_config", "images"])]
        file: Option<PathBuf>,
        /// The planned kind cluster's name.
        #[arg(long, default_value = crate::cluster::DEFAULT_CLUSTER)]
        cluster: String,
        /// The kind cluster config it will be created with (nodes, host ports).
        #[arg(long, value_name = "FILE")]
        kind_config: Option<PathBuf>,
        /// An image to be loaded into every node (repeatable): sized from the engine.
        #[arg(long = "image", value_name = "IMAGE")]
        images: Vec<String>,
        /// Where runs are recorded (the doctor records its checks there as
        /// a run); with -f, each build's memory is the growth recorded
        /// there while it last built.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Check a plan without running anything: every problem with its
    /// file:line:column; `-o json` prints the resolved plan. Exit 2 when invalid.
    Check(CheckArgs),
    /// Plan commands (`plan check` is `check`).
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Print the plan file's JSON Schema (draft 2020-12), for editors.
    Schema,
    /// Bring the plan's environment up: the cluster (an existing one with the
    /// plan's name is reused; a missing one is created with kind), image
    /// builds within the memory budget, delivery into every node, deploy
    /// steps with their waits. Recorded as a run under --root.
    Up(PlanRunArgs),
    /// Run the plan's test against the environment, with KUBECONFIG and the
    /// plan's env; its output is streamed and kept in the run's
    /// artifacts/test.log. The exit code is the test's.
    Test(PlanRunArgs),
    /// Delete the plan's cluster with `kind delete cluster` (an existing
    /// cluster, `cluster.existing`, is left alone).
    Down(PlanRunArgs),
    /// up, test, then teardown as the plan's policy says (default: delete
    /// on success, keep on failure with logs and a diagnosis in the run
    /// directory); --keep / --delete or LOADMASTER_TEARDOWN override it.
    /// The exit code is the test's when the test failed.
    Run {
        #[command(flatten)]
        args: PlanRunArgs,
        /// Keep the cluster whatever the outcome.
        #[arg(long, conflicts_with = "delete")]
        keep: bool,
        /// Delete the cluster whatever the outcome.
        #[arg(long)]
        delete: bool,
    },
    /// A report of a recorded run (the latest by default) from its journal:
    /// HTML (self-contained, with charts), Markdown (also appended to
    /// $GITHUB_STEP_SUMMARY when set) or JUnit XML (one test case per step).
    Report {
        /// A run id (from `loadmaster runs`) or a run directory.
        run: Option<String>,
        #[arg(long, value_enum, default_value_t = report::Format::Html)]
        format: report::Format,
        /// Write the report here instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Where runs are recorded.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
    },
    /// List recorded runs (newest last): id, plan, start, duration, result.
    Runs {
        /// Where runs are recorded.
        #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
        root: PathBuf,
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

/// Set to 1, `up` and `run` skip their pre-flight as `--skip-preflight` does.
const SKIP_PREFLIGHT_ENV: &str = "LOADMASTER_SKIP_PREFLIGHT";

#[derive(clap::Args, Debug)]
struct PlanRunArgs {
    /// The plan file.
    #[arg(long, short, value_name = "FILE", default_value = crate::plan::DEFAULT_FILE)]
    file: PathBuf,
    /// Where runs are recorded.
    #[arg(long, value_name = "DIR", env = "LOADMASTER_ROOT", default_value = crate::journal::DEFAULT_ROOT)]
    root: PathBuf,
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// How progress shows on stderr: `tty` redraws one line per active
    /// step (delivery with bytes and ETA), `plain` prints timestamped
    /// lines (CI), `none` only loadmaster's notes; `auto`: `tty` when
    /// stderr is a terminal, else `plain`.
    #[arg(long, value_enum, env = "LOADMASTER_PROGRESS", default_value_t = progress::Mode::Auto)]
    progress: progress::Mode,
    /// `up` and `run`: do not start with the pre-flight checks (what
    /// `doctor -f` checks); the journal records that they were skipped.
    /// Also `LOADMASTER_SKIP_PREFLIGHT=1`.
    #[arg(long)]
    skip_preflight: bool,
    /// `up` and `run`: after a failed step, go on with every step that
    /// does not need it (by default nothing more starts, and what runs
    /// ends).
    #[arg(long)]
    keep_going: bool,
}

impl PlanRunArgs {
    fn into_run(self, teardown: Option<crate::plan::TeardownAction>) -> run::RunArgs {
        run::RunArgs {
            file: self.file,
            root: self.root,
            teardown,
            output: self.output,
            progress: self.progress,
            keep_going: self.keep_going,
            skip_preflight: if self.skip_preflight {
                Some("--skip-preflight".to_string())
            } else {
                std::env::var(SKIP_PREFLIGHT_ENV)
                    .is_ok_and(|value| value == "1")
                    .then(|| format!("{SKIP_PREFLIGHT_ENV}=1"))
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum PlanCommand {
    /// Same as `loadmaster check`.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// The plan file.
    #[arg(long, short, value_name = "FILE", default_value = crate::plan::DEFAULT_FILE)]
    file: PathBuf,
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts: one JSON document on stdout.
    Json,
}

/// Exit codes (see the module docs).
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NO_ENGINE: u8 = 3;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Deliver(#[from] crate::deliver::DeliverError),
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Push(Box<PushError>),
    #[error("pushing {image}: {error}")]
    PushFailed {
        image: String,
        error: Box<PushError>,
    },
    #[error("the load failed on some nodes:\n{0}")]
    NodesFailed(String),
    /// A failure and its diagnosis, gathered when it happened; printed after it.
    #[error("{error}\n\n{diagnosis}")]
    Diagnosed {
        error: Box<CommandError>,
        /// The diagnosis as Markdown.
        diagnosis: String,
    },
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("{failed} doctor check(s) failed: see the fixes above")]
    ChecksFailed { failed: usize },
    #[error(transparent)]
    Run(#[from] crate::runner::RunError),
    /// A run that ended badly; its exit code is the test's when the test
    /// failed.
    #[error("{message}\n  the run's journal and logs: {}", run_dir.display())]
    RunFailed {
        message: String,
        run_dir: PathBuf,
        code: u8,
    },
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot read {path}: {source} (give a readable log file, or `-` for stdin)")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        let engine_error = match self {
            CommandError::Diagnosed { error, .. } => return error.exit_code(),
            CommandError::RunFailed { code, .. } => return *code,
            CommandError::Run(crate::runner::RunError::Select(SelectError::NoEngine {
                ..
            })) => {
                return EXIT_NO_ENGINE;
            }
            CommandError::Select(SelectError::NoEngine { .. }) => return EXIT_NO_ENGINE,
            CommandError::Select(SelectError::UnknownEngine { .. })
            | CommandError::Input { .. }
            | CommandError::BadInput(_)
            | CommandError::Doctor(_)
            | CommandError::Plan(_)
            | CommandError::Report(crate::report::ReportError::UnknownRun { .. })
            | CommandError::Deliver(DeliverError::BadArchive { .. }) => {
                return EXIT_BAD_INPUT;
            }
            CommandError::Push(error) | CommandError::PushFailed { error, .. }
                if error.is_bad_input() =>
            {
                return EXIT_BAD_INPUT;
            }
            CommandError::Push(error) | CommandError::PushFailed { error, .. } => match &**error {
                PushError::Engine(e) | PushError::Source(DeliverError::Engine(e)) => e,
                _ => return EXIT_FAILED,
            },
            CommandError::Engine(e)
            | CommandError::Cluster(ClusterError::Engine(e))
            | CommandError::Deliver(DeliverError::Engine(e)) => e,
            _ => return EXIT_FAILED,
        };
        match engine_error {
            EngineError::NotInstalled { .. } | EngineError::NotRunning { .. } => EXIT_NO_ENGINE,
            _ => EXIT_FAILED,
        }
    }
}

/// Parses the command line, runs the command, and reports its outcome.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout stopped reading (`| head`): it had what it
        // wanted. Quiet, with the status a shell shows for SIGPIPE.
        Err(CommandError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(EXIT_CLOSED_PIPE)
        }
        Err(error) => {
            // A closed stderr leaves nobody to tell.
            let _ = writeln!(std::io::stderr(), "loadmaster: error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// 128 + SIGPIPE.
const EXIT_CLOSED_PIPE: u8 = 141;

/// Whether `result` of writing to stdout is fine for a command whose work
/// is done whatever the reader took: nothing failed but the write to a
/// reader that stopped reading.
pub(crate) fn reader_gone(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Sends tracing's lines to stderr (above the terminal renderer's frame)
/// at the level `-v` asks for, else as `RUST_LOG` says, else not at all:
/// without either, no subscriber is installed and spans cost nothing.
fn trace_to_stderr(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => match std::env::var("RUST_LOG") {
            Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
            _ => return,
        },
        1 => EnvFilter::new("loadmaster=info"),
        _ => EnvFilter::new("loadmaster=debug"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::events::StderrLines)
        .try_init();
}

fn run(cli: Cli) -> Result<(), CommandError> {
    trace_to_stderr(cli.verbose);
    crate::process::set_stall_limit(std::time::Duration::from_secs(cli.stall_timeout));
    let selection = || select_engine(cli.engine);
    match cli.command {
        Command::Load {
            images,
            cluster,
            nodes,
            archive,
            parallel,
            path,
            platform,
            image_cache,
            image_cache_max_size,
            output,
            root,
        } => load::load(
            selection()?,
            load::LoadArgs {
                images,
                cluster,
                nodes,
                archive,
                parallel: parallel.into(),
                path,
                platform,
                image_cache: image_cache.map(|dir| {
                    let max = image_cache_max_size.map(|s| s.bytes());
                    (dir, max.unwrap_or(crate::deliver::cache::DEFAULT_MAX_SIZE))
                }),
                output,
                root,
            },
        ),
        Command::Push {
            images,
            registry,
            archive,
            allow_http,
            cert_dir,
            output,
            root,
        } => push::push(
            cli.engine,
            push::PushArgs {
                images,
                registry,
                archive,
                allow_http,
                cert_dir,
                output,
                root,
            },
        ),
        Command::Engine { output } => inspect::engine(selection()?, output),
        Command::Clusters { name: None, output } => inspect::clusters(selection()?, output),
        Command::Clusters {
            name: Some(name),
            output,
        } => inspect::cluster(selection()?, &name, output),
        Command::Triage {
            log: Some(log),
            output,
            ..
        } => triage::run(log, cli.engine, output),
        Command::Triage {
            log: None,
            run,
            root,
            output,
        } => triage::recorded(&root, run.as_deref(), cli.engine, output),
        Command::Doctor {
            file: Some(plan),
            root,
            output,
            ..
        } => doctor::doctor_plan(cli.engine, &plan, &root, output),
        Command::Doctor {
            file: None,
            cluster,
            kind_config,
            images,
            root,
            output,
            ..
        } => doctor::doctor(
            cli.engine,
            &cluster,
            kind_config.as_deref(),
            images,
            &root,
            output,
        ),
        Command::Check(args) | Command::Plan(PlanCommand::Check(args)) => {
            schema::check(&args.file, args.output)
        }
        Command::Schema => schema::schema(),
        Command::Runs { root, output } => runs::runs(&root, output),
        Command::Report {
            run,
            format,
            output,
            root,
        } => report::report(&root, run.as_deref(), format, output.as_deref()),
        Command::Up(args) => run::run(Phase::Up, cli.engine, args.into_run(None)),
        Command::Test(args) => run::run(Phase::Test, cli.engine, args.into_run(None)),
        Command::Down(args) => run::run(Phase::Down, cli.engine, args.into_run(None)),
        Command::Run { args, keep, delete } => {
            let teardown = match (keep, delete) {
                (true, _) => Some(crate::plan::TeardownAction::Keep),
                (_, true) => Some(crate::plan::TeardownAction::Delete),
                _ => None,
            };
            run::run(Phase::Run, cli.engine, args.into_run(teardown))
        }
    }
}

impl From<PushError> for CommandError {
    fn from(error: PushError) -> CommandError {
        CommandError::Push(Box::new(error))
    }
}

/// An image archive to read (`-`: standard input); `image` picks one of
/// its images.
fn archive_source<'a>(path: &str, image: Option<&'a str>) -> Result<Source<'a>, CommandError> {
    let (reader, label): (Box<dyn std::io::Read + Send>, String) = if path == "-" {
        (Box::new(std::io::stdin()), "standard input".to_string())
    } else {
        let file = std::fs::File::open(path).map_err(|source| CommandError::Input {
            path: path.to_string(),
            source,
        })?;
        (Box::new(std::io::BufReader::new(file)), path.to_string())
    };
    Ok(Source::Archive {
        reader,
        label,
        image,
        known: None,
        platform: None,
    })
}

/// Selects the engine, telling the user when the choice was a close call.
fn select_engine(flag: Option<EngineChoice>) -> Result<Selection, CommandError> {
    let selection = engine::select(flag, &|name| std::env::var(name).ok())?;
    if selection.both_answer {
        let _ = writeln!(
            std::io::stderr(),
            "loadmaster: using {}: {}",
            selection.engine.kind(),
            selection.reason
        );
    }
    Ok(selection)
}
