//! What `/proc` says about memory and kernel settings: `MemAvailable` and
//! `MemTotal` of meminfo, integer sysctls.
//!
//! Reads go through a `/proc` root that tests can point at a fixture tree,
//! so that limits below a threshold can be tested without changing the
//! machine.

use std::io;
use std::path::Path;

/// Memory the kernel can give new work without swapping:
/// `MemAvailable` of `<proc>/meminfo`, in bytes.
pub fn mem_available(proc_root: &Path) -> io::Result<u64> {
    let path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&path)?;
    meminfo_field(&text, "MemAvailable").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no MemAvailable line in {}", path.display()),
        )
    })
}

/// `MemTotal` and `MemAvailable` of a meminfo text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    Some((
        meminfo_field(text, "MemTotal")?,
        meminfo_field(text, "MemAvailable")?,
    ))
}

/// One `KEY:   N kB` line of meminfo, in bytes.
fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// An integer sysctl, e.g. `fs/inotify/max_user_watches`, from `<proc>/sys`.
pub fn sysctl(proc_root: &Path, name: &str) -> io::Result<u64> {
    let path = proc_root.join("sys").join(name);
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds {:?}, not a number", path.display(), text.trim()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_bytes() {
        let scratch = tempfile::Builder::new()
            .prefix("lm-host-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal:       24684084 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n",
        )
        .unwrap();
        let available = mem_available(&dir);
        assert_eq!(available.unwrap(), 2048 * 1024);
    }

    #[test]
    fn reads_meminfo_total_and_available() {
        let text = "MemTotal:       24684084 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text), Some((24_684_084 * 1024, 2048 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }
}
