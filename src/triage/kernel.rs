//! OOM kills in kernel log text (`dmesg`, `journalctl -k`, or kernel lines
//! pasted into any log).
//!
//! One OOM kill spans several lines; the ones read here, as kernels 4.19 to
//! 6.x print them (mm/oom_kill.c, mm/memcontrol.c):
//!
//! ```text
//! memory: usage 196608kB, limit 196608kB, failcnt 2213
//! oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/libpod_parent/libpod-4b1e,task=containerd,pid=4321,uid=0
//! Memory cgroup out of memory: Killed process 4321 (containerd) total-vm:1342508kB, anon-rss:38212kB, ...
//! ```
//!
//! The "Killed process" line is the kill; the others add its cgroup and the
//! limit it hit. Older kernels print "Kill process N (name) score S or
//! sacrifice child" first, then "Killed process"; an excerpt with the
//! first line alone still records the kill.

use super::evidence::{Evidence, Fact, Source};
use super::log::timestamp;
use crate::units::bytes;
use serde::Serialize;
use std::fmt;

/// One process the kernel killed for lack of memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OomKill {
    pub pid: u32,
    /// The process name (the kernel's `comm`, at most 15 characters).
    pub process: String,
    pub scope: OomScope,
    /// The memory cgroup that ran out (`oom_memcg`, else the victim's
    /// `task_memcg`), when the kernel says.
    pub memcg: Option<String>,
    /// The victim's resident anonymous memory when it was killed, in KiB.
    pub anon_rss_kib: Option<u64>,
    /// The cgroup's usage and limit when it ran out (cgroup OOMs only), KiB.
    pub usage_kib: Option<u64>,
    pub limit_kib: Option<u64>,
}

/// What ran out of memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OomScope {
    /// A memory cgroup reached its limit ("Memory cgroup out of memory",
    /// `CONSTRAINT_MEMCG`): a container's limit, not the machine's.
    Cgroup,
    /// The whole machine, or the engine's VM, ran out ("Out of memory").
    System,
}

impl fmt::Display for OomKill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the kernel OOM-killed {} (pid {})",
            self.process, self.pid
        )?;
        match self.scope {
            OomScope::Cgroup => {
                write!(f, ": its memory cgroup")?;
                if let Some(memcg) = &self.memcg {
                    write!(f, " {memcg}")?;
                }
                match self.limit_kib {
                    Some(limit) => write!(f, " reached its limit of {}", bytes(limit * 1024)),
                    None => write!(f, " reached its limit"),
                }
            }
            OomScope::System => write!(f, ": the machine (or the engine's VM) ran out of memory"),
        }
    }
}

/// An OOM kill found in a text, with where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// 1-based number of the "Killed process" line (of an old kernel's
    /// "Kill process" line when the excerpt lacks the other).
    pub line: usize,
    pub text: String,
    pub time: Option<String>,
    pub kill: OomKill,
}

/// The OOM kills in `text`, in order. Lines that are not kernel OOM lines are
/// ignored, so any log can be scanned.
pub fn scan(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    // Context lines come before the kill they describe.
    let mut context = Context::default();
    let mut memcg_scope = false;
    // An old kernel's "Kill process N (name) score S or sacrifice child",
    // kept until its "Killed process N" line: a pasted excerpt may hold the
    // announcement alone, and it is the kill all the same.
    let mut announced: Option<(usize, u32, String)> = None;
    for (index, line) in text.lines().enumerate() {
        if let Some(rest) = after(line, "memory: usage ") {
            context.usage = parse_usage(rest);
        } else if let Some(rest) =
            after(line, "oom-kill:constraint=").or_else(|| after(line, "oom-kill: constraint="))
        {
            context.summary = Some(Summary::parse(rest));
        } else if let Some(pending) = context.summary.as_mut()
            && CONTINUED_FIELDS
                .iter()
                .any(|f| line.trim_start().starts_with(f))
        {
            // A summary pasted wrapped: its fields go on on the next lines.
            pending.add_fields(line);
        } else if let Some(rest) = after(line, "out of memory: Kill process ")
            .or_else(|| after(line, "Out of memory: Kill process "))
            && let Some((pid, process)) = pid_and_name(rest)
        {
            if let Some((at, pid, process)) = announced.take() {
                found.push(context.kill(at, text, pid, process, memcg_scope));
            }
            memcg_scope = line.contains("Memory cgroup out of memory");
            announced = Some((index, pid, process));
        } else if let Some(rest) = after(line, "Killed process ")
            && !line.contains("oom_reaper")
            && let Some((pid, process)) = pid_and_name(rest)
        {
            // An announcement of another process stands as its own kill.
            if let Some((at, other, name)) = announced.take().filter(|(_, p, _)| *p != pid) {
                found.push(context.kill(at, text, other, name, memcg_scope));
            }
            let cgroup = memcg_scope || line.contains("Memory cgroup out of memory");
            found.push(context.kill(index, text, pid, process, cgroup));
            memcg_scope = false;
        }
    }
    if let Some((at, pid, process)) = announced {
        found.push(context.kill(at, text, pid, process, memcg_scope));
    }
    found
}

/// What the kernel printed before a kill: the cgroup's usage and the
/// oom-kill summary, each describing the next kill only.
#[derive(Default)]
struct Context {
    usage: Option<(u64, u64)>,
    summary: Option<Summary>,
}

impl Context {
    /// The kill of `pid` reported on line `index` (0-based) of `text`, with
    /// the context read before it (taken, so that it describes one kill).
    fn kill(&mut self, index: usize, text: &str, pid: u32, process: String, memcg: bool) -> Found {
        let line = text.lines().nth(index).unwrap_or("");
        let summary = self.summary.take().filter(|s| s.pid == Some(pid));
        let scope = if memcg || summary.as_ref().is_some_and(|s| s.memcg_constraint) {
            OomScope::Cgroup
        } else {
            OomScope::System
        };
        let (usage_kib, limit_kib) = match (scope, self.usage.take()) {
            (OomScope::Cgroup, Some((u, l))) => (Some(u), Some(l)),
            _ => (None, None),
        };
        Found {
            line: index + 1,
            text: line.trim().to_string(),
            time: timestamp(line),
            kill: OomKill {
                pid,
                process,
                scope,
                memcg: summary.and_then(|s| s.memcg),
                anon_rss_kib: kib_after(line, "anon-rss:"),
                usage_kib,
                limit_kib,
            },
        }
    }
}

/// The OOM kills in `text` as evidence; `source` makes the source of a line.
pub fn evidence(text: &str, source: &dyn Fn(usize) -> Source) -> Vec<Evidence> {
    scan(text)
        .into_iter()
        .map(|found| {
            Evidence::new(source(found.line), Fact::OomKill(found.kill))
                .with_excerpt(found.text)
                .with_time(found.time)
        })
        .collect()
}

/// A whole kernel log read with `command`: its OOM kills, and a record that
/// it was read, which counts against an OOM kill when it holds none.
pub fn kernel_log_evidence(text: &str, command: &str) -> Vec<Evidence> {
    let source = |line| Source::KernelLog {
        command: command.to_string(),
        line,
    };
    let mut evidence = evidence(text, &source);
    let read = Fact::KernelLogRead {
        lines: text.lines().count(),
        oom_kills: evidence.len(),
    };
    evidence.push(Evidence::new(
        Source::Command {
            command: command.to_string(),
        },
        read,
    ));
    evidence
}

/// The `oom-kill:` summary line's fields that matter here.
struct Summary {
    memcg_constraint: bool,
    memcg: Option<String>,
    pid: Option<u32>,
}

/// Fields of the summary that open a continuation line of a wrapped one.
const CONTINUED_FIELDS: [&str; 4] = ["task_memcg=", "oom_memcg=", "task=", "mems_allowed="];

impl Summary {
    /// `rest` is what follows `oom-kill:constraint=`.
    fn parse(rest: &str) -> Summary {
        let mut summary = Summary {
            memcg_constraint: rest.starts_with("CONSTRAINT_MEMCG"),
            memcg: None,
            pid: None,
        };
        summary.add_fields(rest);
        summary
    }

    /// Reads `name=value` fields, comma-separated.
    fn add_fields(&mut self, fields: &str) {
        let summary = self;
        for field in fields.trim().split(',').map(str::trim) {
            match field.split_once('=') {
                // The cgroup whose limit was hit; the victim may sit below it.
                Some(("oom_memcg", memcg)) => summary.memcg = Some(memcg.to_string()),
                Some(("task_memcg", memcg)) if summary.memcg.is_none() => {
                    summary.memcg = Some(memcg.to_string())
                }
                Some(("pid", pid)) => summary.pid = pid.parse().ok(),
                _ => {}
            }
        }
    }
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// `4321 (containerd) total-vm:...` → (4321, "containerd").
fn pid_and_name(rest: &str) -> Option<(u32, String)> {
    let (pid, rest) = rest.split_once(' ')?;
    let name = rest.strip_prefix('(')?.split(')').next()?;
    Some((pid.parse().ok()?, name.to_string()))
}

/// `196608kB, limit 196608kB, failcnt 2213` → (usage, limit) in KiB.
fn parse_usage(rest: &str) -> Option<(u64, u64)> {
    let usage = rest.split("kB").next()?.trim().parse().ok()?;
    let limit = kib_after(rest, "limit ")?;
    Some((usage, limit))
}

/// The number of KiB right after `marker`: `anon-rss:38212kB` → 38212.
fn kib_after(text: &str, marker: &str) -> Option<u64> {
    let rest = after(text, marker)?;
    rest.split("kB").next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cgroup v1 memcg OOM as Debian 12's 6.1 kernel logs it (dmesg),
    // trimmed of the per-task table and the memory.stat dump.
    const CGROUP_V1_OOM: &str = "\
[ 8721.402101] containerd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 8721.402112] CPU: 3 PID: 51234 Comm: containerd Not tainted 6.1.0-18-amd64 #1  Debian 6.1.76-1
[ 8721.402301] memory: usage 196608kB, limit 196608kB, failcnt 2213
[ 8721.402303] memory+swap: usage 196608kB, limit 9007199254740988kB, failcnt 0
[ 8721.402305] kmem: usage 3012kB, limit 9007199254740988kB, failcnt 0
[ 8721.402306] Memory cgroup stats for /libpod_parent/libpod-4b1e0c:
[ 8721.402355] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=libpod-4b1e0c,mems_allowed=0,oom_memcg=/libpod_parent/libpod-4b1e0c,task_memcg=/libpod_parent/libpod-4b1e0c,task=containerd,pid=51234,uid=0
[ 8721.402371] Memory cgroup out of memory: Killed process 51234 (containerd) total-vm:1342508kB, anon-rss:38212kB, file-rss:29876kB, shmem-rss:0kB, UID:0 pgtables:332kB oom_score_adj:0
[ 8721.409987] oom_reaper: reaped process 51234 (containerd), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
";

    // A whole-VM OOM in a podman machine (Fedora CoreOS 6.8 kernel), read with
    // `journalctl -k`: its prefix carries the time.
    const SYSTEM_OOM_JOURNAL: &str = "\
Dec 15 23:08:21 localhost.localdomain kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/machine.slice/libpod-9c2f.scope/init.scope,task=ctr,pid=8812,uid=0
Dec 15 23:08:21 localhost.localdomain kernel: Out of memory: Killed process 8812 (ctr) total-vm:2290164kB, anon-rss:1702312kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:3532kB oom_score_adj:0
";

    // A 4.9 kernel (Debian 9): no oom-kill summary line, "Kill process" first.
    const OLD_KERNEL_OOM: &str = "\
[  512.120000] memory: usage 131072kB, limit 131072kB, failcnt 87
[  512.120500] Memory cgroup out of memory: Kill process 2211 (containerd) score 1003 or sacrifice child
[  512.121000] Killed process 2211 (containerd) total-vm:901232kB, anon-rss:20480kB, file-rss:11000kB, shmem-rss:0kB
";

    #[test]
    fn cgroup_oom_names_process_cgroup_and_limit() {
        let found = scan(CGROUP_V1_OOM);
        assert_eq!(found.len(), 1, "the oom_reaper line is not a second kill");
        let f = &found[0];
        assert_eq!(f.line, 8);
        assert_eq!(f.time.as_deref(), Some("8721.402371"));
        assert_eq!(
            f.kill,
            OomKill {
                pid: 51234,
                process: "containerd".into(),
                scope: OomScope::Cgroup,
                memcg: Some("/libpod_parent/libpod-4b1e0c".into()),
                anon_rss_kib: Some(38212),
                usage_kib: Some(196608),
                limit_kib: Some(196608),
            }
        );
        assert_eq!(
            f.kill.to_string(),
            "the kernel OOM-killed containerd (pid 51234): its memory cgroup /libpod_parent/libpod-4b1e0c reached its limit of 192.0 MiB"
        );
    }

    #[test]
    fn global_oom_in_journal_format() {
        let found = scan(SYSTEM_OOM_JOURNAL);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kill.scope, OomScope::System);
        assert_eq!(found[0].kill.process, "ctr");
        assert_eq!(found[0].kill.anon_rss_kib, Some(1702312));
        assert_eq!(found[0].kill.limit_kib, None);
        assert_eq!(found[0].time.as_deref(), Some("Dec 15 23:08:21"));
    }

    #[test]
    fn a_summary_pasted_wrapped_still_names_its_cgroup() {
        let wrapped = "\
oom-kill: constraint=CONSTRAINT_MEMCG, cpuset=system-runner.slice
  task_memcg=/system.slice/system-runner.slice/runner@9.service
  task=e2e, pid=766866
Memory cgroup out of memory: Killed process 766866 (e2e)
";
        let kill = &scan(wrapped)[0].kill;
        assert_eq!(kill.scope, OomScope::Cgroup);
        assert_eq!(
            kill.memcg.as_deref(),
            Some("/system.slice/system-runner.slice/runner@9.service")
        );
    }

    #[test]
    fn old_kernels_kill_in_a_memcg_too() {
        let found = scan(OLD_KERNEL_OOM);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kill.scope, OomScope::Cgroup);
        assert_eq!(found[0].kill.limit_kib, Some(131072));
        assert_eq!(found[0].kill.memcg, None);
    }

    #[test]
    fn an_old_kernels_announcement_alone_is_the_kill() {
        let found = scan(
            "[67664.932863] Out of memory: Kill process 19463 (cc1plus) score 81 or sacrifice child\n",
        );
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].kill.pid, found[0].kill.process.as_str()),
            (19463, "cc1plus")
        );
        assert_eq!(found[0].kill.scope, OomScope::System);
    }

    #[test]
    fn a_clean_kernel_log_is_recorded_as_read() {
        let evidence = kernel_log_evidence("[ 1.0] Linux version 6.1.0\n", "dmesg");
        assert_eq!(
            evidence,
            vec![Evidence::new(
                Source::Command {
                    command: "dmesg".into()
                },
                Fact::KernelLogRead {
                    lines: 1,
                    oom_kills: 0
                }
            )]
        );
    }
}
