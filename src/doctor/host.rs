//! Measurements of this machine's kernel: free memory, free disk and the
//! filesystem type under a path, and sysctl values.
//!
//! Reads go through a `/proc` root that tests can point at a fixture tree,
//! so that limits below a threshold can be tested without changing the
//! machine. Disk figures come from `statfs(2)` on the real path.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Memory the kernel can give new work without swapping:
/// `MemAvailable` of `<proc>/meminfo`, in bytes.
pub fn mem_available(proc_root: &Path) -> io::Result<u64> {
    let path = proc_root.join("meminfo");
    let text = std::fs::read_to_string(&path)?;
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix("MemAvailable:")?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no MemAvailable line in {}", path.display()),
            )
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

/// Free and total space of the filesystem under a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Space {
    /// The path asked about.
    pub path: PathBuf,
    /// The path measured: the path itself, or its nearest ancestor this
    /// user can reach (a storage root such as /var/lib/docker is often
    /// closed to other users).
    pub measured_at: PathBuf,
    /// Bytes an unprivileged writer can still use (`f_bavail`).
    pub available: u64,
    pub total: u64,
    /// A tmpfs: what is written there takes memory, not disk.
    pub tmpfs: bool,
}

/// `statfs(2)` of `path`, or of its nearest reachable ancestor.
pub fn space(path: &Path) -> io::Result<Space> {
    let mut at = path;
    loop {
        match statfs(at) {
            Ok(stat) => {
                // f_frsize is the unit of the block counts; 0 on old kernels.
                let unit = if stat.f_frsize > 0 {
                    stat.f_frsize as u64
                } else {
                    stat.f_bsize as u64
                };
                return Ok(Space {
                    path: path.to_path_buf(),
                    measured_at: at.to_path_buf(),
                    available: stat.f_bavail * unit,
                    total: stat.f_blocks * unit,
                    tmpfs: stat.f_type == libc::TMPFS_MAGIC,
                });
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
                ) =>
            {
                at = at.parent().ok_or(error)?;
            }
            Err(error) => return Err(error),
        }
    }
}

fn statfs(path: &Path) -> io::Result<libc::statfs> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stat points to
    // writable memory of the right size; statfs fills it on success.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised the struct.
    Ok(unsafe { stat.assume_init() })
}

/// The directory temporary files go to: `TMPDIR`, else /tmp (what kind,
/// docker and Go's os.TempDir use).
pub fn temp_dir(tmpdir: Option<&str>) -> PathBuf {
    match tmpdir {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/tmp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_in_bytes() {
        let dir = std::env::temp_dir().join(format!("lm-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("meminfo"),
            "MemTotal:       24684084 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n",
        )
        .unwrap();
        let available = mem_available(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(available.unwrap(), 2048 * 1024);
    }

    #[test]
    fn an_unreachable_path_is_measured_at_its_ancestor() {
        let space = space(Path::new("/nonexistent-loadmaster/deeper")).unwrap();
        assert_eq!(space.measured_at, Path::new("/"));
        assert!(space.total > 0);
    }

    #[test]
    fn temp_dir_follows_tmpdir() {
        assert_eq!(temp_dir(Some("/dev/shm")), Path::new("/dev/shm"));
        assert_eq!(temp_dir(Some("")), Path::new("/tmp"));
        assert_eq!(temp_dir(None), Path::new("/tmp"));
    }
}
