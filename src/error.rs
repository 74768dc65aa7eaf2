//! The errors of every stage, one enum: each variant carries the operation
//! and the device, address or file it concerns, so callers match variants
//! (never text) and the message tells the user what to do.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// What to do when raw sockets or capture are refused.
pub const PRIVILEGES_HINT: &str = "raw sockets and capture need root or capabilities: run with sudo, or `sudo setcap cap_net_raw,cap_net_admin+eip $(command -v synscope)`, or add --unprivileged (connect() probes, no root needed; it cannot see TTLs)";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Raw sockets or capture are not allowed (no root, no capabilities):
    /// connect() probes still work.
    #[error("{op}: not permitted; {PRIVILEGES_HINT}")]
    NotPermitted { op: String },

    #[error("nothing to scan: no target or no port")]
    NothingToScan,

    #[error("{target}: cannot open a socket to find the route: {source}")]
    RouteSocket { target: IpAddr, source: io::Error },
    #[error("{target}: no route to it ({source}); check the address and `ip route get {target}`")]
    NoRoute { target: IpAddr, source: io::Error },
    #[error("{target}: no source address: {source}")]
    NoSourceAddress { target: IpAddr, source: io::Error },
    #[error("cannot list interfaces: {reason}")]
    Interfaces { reason: String },
    #[error("{target}: no capture interface has the source address {source_addr}")]
    NoCaptureInterface { target: IpAddr, source_addr: IpAddr },

    /// Opening, filtering or reading a live capture failed.
    #[error("capture on {device}: {reason}")]
    Capture { device: String, reason: String },

    /// A raw socket could not be opened or set up.
    #[error("raw socket: {op}{source}")]
    Socket { op: String, source: io::Error },
    /// Sending failed for good (the interface is gone, the route too).
    #[error("{op}: {reason}")]
    Send { op: String, reason: String },
    #[error("connect to {target}:{port}: {source}")]
    Connect {
        target: IpAddr,
        port: u16,
        source: io::Error,
    },

    /// A capture file (or standard input) could not be read on.
    #[error("{reason}")]
    Read { reason: String },

    /// A capture or report file could not be written.
    #[error("{}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },

    #[error("--user {name}: {reason}")]
    User { name: String, reason: String },
    #[error("{reason}")]
    DropPrivileges { reason: String },

    /// A target block holds more addresses than one scan takes.
    #[error("{spec}: {count} addresses, more than the {limit} one scan takes; split it")]
    BlockTooLarge {
        spec: String,
        count: u128,
        limit: usize,
    },
    /// A target of digits and dots (an IPv4 address or an nmap-style
    /// range) that is not one: never looked up as a name.
    #[error(
        "{spec}: not an IPv4 address or range ({why}); each of the four parts is 0-255, a range 10-20, a list 1,5,7 or *"
    )]
    BadRange { spec: String, why: String },
    /// A target that is no address, block, range or host name (the
    /// reason names it); no resolver was asked.
    #[error("{why}")]
    NotATarget { why: String },
    /// A target name could not be resolved.
    #[error("{spec}: cannot resolve the name: {source}")]
    Resolve {
        spec: String,
        source: crate::resolve::LookupError,
    },
    #[error("{spec}: the name has no address")]
    NameHasNoAddress { spec: String },
    /// A broadcast, multicast or unspecified address, without `--force`.
    #[error(
        "{spec}: refusing to probe {address}, {what}: it is not one host; add --force to probe it anyway"
    )]
    NotOneHost {
        spec: String,
        address: IpAddr,
        what: &'static str,
    },
    /// A target has addresses, none of the family asked (-4/-6).
    #[error(
        "{spec}: no {family} address ({other} of the other family); drop -4/-6 or give another target"
    )]
    NoAddressOfFamily {
        spec: String,
        family: &'static str,
        other: usize,
    },
    #[error("more than {limit} target addresses in one scan; split it")]
    TooManyTargets { limit: usize },

    /// The command line asked for something that cannot be done.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether raw sockets or capture were refused (connect() probes may
    /// be used instead).
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::NotPermitted { .. })
    }

    pub(crate) fn socket(op: &str, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::PermissionDenied {
            Error::NotPermitted {
                op: "raw socket".into(),
            }
        } else {
            Error::Socket {
                op: op.to_string(),
                source,
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
