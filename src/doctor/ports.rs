//! Is a host port free, and if not, who holds it.
//!
//! Two sources, because neither alone is enough: a bind test on loopback
//! (what the engine will do, minus privileges) and the kernel's socket
//! tables in `/proc/net/{tcp,tcp6,udp,udp6}`, which also show listeners on
//! addresses we must not bind ourselves (anything that is not loopback) and
//! give the socket inode that leads to the owning process via
//! `/proc/<pid>/fd`. Both see only this network namespace; a rootful engine
//! publishes ports in this one, so that is where conflicts are.

pub use crate::kind_config::{HostPort, Protocol};
use serde::Serialize;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

/// A process, as `/proc` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    /// `/proc/<pid>/comm`: at most 15 characters.
    pub name: String,
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortState {
    Free {
        /// What was looked at, for the finding's source.
        checked: String,
    },
    Busy {
        /// The socket in the way.
        on: SocketAddr,
        /// None when `/proc/<pid>/fd` could not be read (another user's
        /// process, without root) or the socket is in another namespace.
        owner: Option<Process>,
        checked: String,
    },
    /// SCTP: neither a bind test nor a table we read.
    NotChecked,
}

/// Probes one host port.
pub fn probe(proc_root: &Path, wanted: &HostPort) -> PortState {
    if wanted.protocol == Protocol::Sctp {
        return PortState::NotChecked;
    }
    let mut checked = Vec::new();
    let table = table_names(wanted.protocol).join(",");
    let sockets = sockets(proc_root, wanted.protocol);
    checked.push(format!("{}/net/{{{table}}}", proc_root.display()));
    let in_table = sockets
        .iter()
        .find(|s| s.local.port() == wanted.port && conflicts(s.local.ip(), wanted.address));
    if let Some(socket) = in_table {
        return PortState::Busy {
            on: socket.local,
            owner: owner(proc_root, socket.inode),
            checked: checked.join(" and "),
        };
    }
    if let Some(address) = bind_address(wanted.address) {
        let at = SocketAddr::new(address, wanted.port);
        checked.insert(0, format!("bind test on {at}"));
        if let Err(error) = bind(at, wanted.protocol)
            && error.kind() == io::ErrorKind::AddrInUse
        {
            return PortState::Busy {
                on: at,
                // In use, yet not in our tables: another namespace's socket
                // can't hold a port here, so it is one we could not read.
                owner: None,
                checked: checked.join(" and "),
            };
        }
    }
    PortState::Free {
        checked: checked.join(" and "),
    }
}

/// Where the bind test may bind for a wanted address: loopback itself, or
/// loopback standing in for "every address" (binding that would listen on
/// the machine's real interfaces). None for any other address.
fn bind_address(wanted: IpAddr) -> Option<IpAddr> {
    match wanted {
        IpAddr::V4(a) if a.is_loopback() => Some(wanted),
        IpAddr::V4(a) if a.is_unspecified() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(a) if a.is_loopback() => Some(wanted),
        IpAddr::V6(a) if a.is_unspecified() => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => None,
    }
}

fn bind(at: SocketAddr, protocol: Protocol) -> io::Result<()> {
    match protocol {
        Protocol::Tcp => TcpListener::bind(at).map(drop),
        Protocol::Udp => UdpSocket::bind(at).map(drop),
        Protocol::Sctp => Ok(()),
    }
}

/// True when a socket bound to `held` keeps a bind to `wanted` (same port)
/// from succeeding. An IPv6 wildcard is taken to cover IPv4 too (dual-stack,
/// Linux's default).
fn conflicts(held: IpAddr, wanted: IpAddr) -> bool {
    held.is_unspecified() || wanted.is_unspecified() || held == wanted
}

fn table_names(protocol: Protocol) -> [&'static str; 2] {
    match protocol {
        Protocol::Udp => ["udp", "udp6"],
        _ => ["tcp", "tcp6"],
    }
}

/// A bound socket from the kernel's tables.
#[derive(Debug, PartialEq, Eq)]
struct Socket {
    local: SocketAddr,
    inode: u64,
}

/// TCP sockets in LISTEN, or bound UDP sockets. Unreadable tables count as
/// empty: the bind test still runs.
fn sockets(proc_root: &Path, protocol: Protocol) -> Vec<Socket> {
    table_names(protocol)
        .iter()
        .filter_map(|name| std::fs::read_to_string(proc_root.join("net").join(name)).ok())
        .flat_map(|text| parse_table(&text, protocol))
        .collect()
}

/// Parses `/proc/net/tcp`-style lines:
/// `sl local_address rem_address st ... uid timeout inode`.
fn parse_table(text: &str, protocol: Protocol) -> Vec<Socket> {
    const TCP_LISTEN: &str = "0A";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if protocol == Protocol::Tcp && *state != TCP_LISTEN {
                return None;
            }
            Some(Socket {
                local: parse_address(local)?,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` -> 127.0.0.1:8080. The kernel prints the address as
/// 32-bit words in this machine's byte order, the port in hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = (0..address.len() / 8)
        .map(|i| u32::from_str_radix(&address[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    let octets: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match octets.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(octets).ok()?),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?);
            // A v4-mapped address is an IPv4 socket for our purposes.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process holding socket `inode`, found by its open file descriptors.
pub fn owner(proc_root: &Path, inode: u64) -> Option<Process> {
    let target = format!("socket:[{inode}]");
    let entries = std::fs::read_dir(proc_root).ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Another user's process, or one that just exited: skip it.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
        });
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
            return Some(Process { pid, name });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_socket_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   1: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0 100 0 0 10 0\n";
        let sockets = parse_table(tcp, Protocol::Tcp);
        // Little-endian machines print 127.0.0.1 as 0100007F.
        if cfg!(target_endian = "little") {
            assert_eq!(
                sockets,
                vec![Socket {
                    local: "127.0.0.1:8080".parse().unwrap(),
                    inode: 4242
                }]
            );
        }
        let tcp6 = "sl local rem st\n 0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 77 1\n";
        assert_eq!(
            parse_table(tcp6, Protocol::Tcp)[0].local,
            "[::]:80".parse().unwrap()
        );
    }

    #[test]
    fn wildcards_conflict_with_everything() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(conflicts(any, lo) && conflicts(lo, any) && conflicts(lo, lo));
        assert!(!conflicts(lo, other));
    }

    #[test]
    fn never_binds_beyond_loopback() {
        assert_eq!(
            bind_address("0.0.0.0".parse().unwrap()),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            bind_address("::".parse().unwrap()),
            Some("::1".parse().unwrap())
        );
        assert_eq!(bind_address("192.168.1.5".parse().unwrap()), None);
    }
}
