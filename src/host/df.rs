//! What tools on the engine's host print about its filesystems: `df -Pk`
//! rows and `/proc/self/mountinfo` entries. Read where no `statfs(2)` of
//! ours can reach: inside a podman machine's VM, or in a short-lived
//! container on a remote engine, whose mount view is not this machine's.

use std::io;

/// One filesystem as `df -Pk` prints it (POSIX output, 1 KiB blocks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfRow {
    pub filesystem: String,
    /// Bytes.
    pub total: u64,
    /// Bytes an unprivileged writer can still use.
    pub available: u64,
    pub mounted_on: String,
}

/// Every row of `df -Pk` output, in the order of the paths asked about.
pub fn parse_df(text: &str) -> io::Result<Vec<DfRow>> {
    let rows: Option<Vec<DfRow>> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |n: usize| fields.get(n)?.parse::<u64>().ok();
            Some(DfRow {
                filesystem: fields.first()?.to_string(),
                total: number(1)? * 1024,
                available: number(3)? * 1024,
                mounted_on: fields.get(5..)?.join(" "),
            })
        })
        .collect();
    match rows {
        Some(rows) if !rows.is_empty() => Ok(rows),
        _ => Err(io::Error::other(format!("unexpected df output: {text:?}"))),
    }
}

/// A mount as `/proc/self/mountinfo` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the filesystem: two paths on the same one share it.
    pub device: String,
    /// `tmpfs`, `ext4`, `overlay`...
    pub fs_type: String,
}

/// The mount at exactly `mount_point` in a mountinfo text (the last one,
/// as a later mount hides an earlier one at the same place).
pub fn mount_at(mountinfo: &str, mount_point: &str) -> Option<Mount> {
    mountinfo.lines().rev().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        (fields.get(4) == Some(&mount_point)).then(|| Mount {
            device: fields[2].to_string(),
            fs_type: after
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_posix_df_rows() {
        // GNU coreutils' df, as a podman machine prints it.
        let gnu = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda4        104266732  20871680  83395052      21% /var\n";
        let rows = parse_df(gnu).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].available, 83_395_052 * 1024);
        assert_eq!(rows[0].total, 104_266_732 * 1024);
        assert_eq!(rows[0].mounted_on, "/var");
        // BusyBox's df (the lab's node image), two paths on one tmpfs.
        let busybox = "Filesystem           1024-blocks    Used Available Capacity Mounted on\nlmtmpfs                1048576     94016    954560   9% /m/1\nlmtmpfs                1048576     94016    954560   9% /m/1\n";
        let rows = parse_df(busybox).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].filesystem, "lmtmpfs");
        assert_eq!(rows[1].total, 1 << 30);
        assert!(parse_df("df: /nope: No such file or directory\n").is_err());
        assert!(parse_df("").is_err());
    }

    #[test]
    fn finds_the_mount_at_a_point() {
        let mountinfo = "\
1167 1089 0:94 / / rw,relatime - overlay overlay rw,lowerdir=/x
1170 1167 254:0 /var/lib/docker /m/0 ro,relatime master:1 - ext4 /dev/vda rw
1171 1167 0:51 / /m/1 ro,nosuid - tmpfs lmtmpfs rw,size=1048576k
1172 1167 0:52 / /m/1 ro - tmpfs other rw
";
        let m0 = mount_at(mountinfo, "/m/0").unwrap();
        assert_eq!(m0.device, "254:0");
        assert_eq!(m0.fs_type, "ext4");
        let m1 = mount_at(mountinfo, "/m/1").unwrap();
        assert_eq!(m1.device, "0:52", "the later mount hides the earlier");
        assert_eq!(m1.fs_type, "tmpfs");
        assert_eq!(mount_at(mountinfo, "/m"), None);
    }
}
