//! Free and total space of the filesystem under a path (`statfs(2)` on the
//! real path), whether it is a tmpfs, and where temporary files go.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
