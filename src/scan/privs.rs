//! Privileges and signals for a live scan.
//!
//! Once its raw sockets and capture handles are open, a scan run as root
//! drops to the invoking user (`SUDO_UID` / `SUDO_GID` under sudo, or
//! `--user NAME`) before it parses a single packet: the open descriptors
//! keep working, nothing else keeps root.
//!
//! SIGINT and SIGTERM only set a flag; the scan loop sees it, stops
//! probing, and reports what it has, marked partial.

use crate::error::Error;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to the interrupted flag.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe), and
    // the sigaction struct is fully initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whom to become after opening the privileged handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// The identity to drop to: `--user NAME` if given, else the sudo caller,
/// else none (root was asked for directly, or we are not root).
pub fn target_identity(user: Option<&str>) -> Result<Option<Identity>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    if let Some(name) = user {
        let c = CString::new(name).map_err(|_| Error::User {
            name: format!("{name:?}"),
            reason: "not a user name".into(),
        })?;
        // SAFETY: getpwnam with a valid C string; the result is read at once.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            return Err(Error::User {
                name: name.into(),
                reason: "no such user".into(),
            });
        }
        // SAFETY: pw is a valid passwd record.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        return Ok(Some(Identity { uid, gid }));
    }
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    match (env("SUDO_UID"), env("SUDO_GID")) {
        (Some(uid), Some(gid)) if uid != 0 => Ok(Some(Identity { uid, gid })),
        _ => Ok(None),
    }
}

/// Becomes `id` for good (groups, gid, then uid), and checks it worked.
pub fn drop_to(id: Identity) -> Result<(), Error> {
    // SAFETY: plain credential syscalls; their results are checked.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(id.gid, id.gid, id.gid) != 0
            || libc::setresuid(id.uid, id.uid, id.uid) != 0
        {
            return Err(Error::DropPrivileges {
                reason: format!(
                    "cannot drop root to uid {} gid {}: {}",
                    id.uid,
                    id.gid,
                    std::io::Error::last_os_error()
                ),
            });
        }
        if libc::geteuid() == 0 && id.uid != 0 {
            return Err(Error::DropPrivileges {
                reason: "still root after dropping privileges; stopping".into(),
            });
        }
    }
    Ok(())
}

/// Who `watch` becomes once its capture is open: `--user NAME`, else the
/// sudo caller, else (root asked for directly) `nobody`: nothing it does
/// after opening its handles needs root.
pub fn watch_identity(user: Option<&str>) -> Result<Option<Identity>, Error> {
    if let Some(id) = target_identity(user)? {
        return Ok(Some(id));
    }
    // SAFETY: geteuid has no preconditions.
    if user.is_some() || unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    match target_identity(Some("nobody")) {
        Ok(id) => Ok(id),
        // No such user on this system: the kernel's overflow ids.
        Err(_) => Ok(Some(Identity {
            uid: 65534,
            gid: 65534,
        })),
    }
}

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;

/// Becomes `id` as [`drop_to`] does, keeping only CAP_DAC_READ_SEARCH and
/// CAP_SYS_PTRACE: what listing and reading another user's /proc/PID/fd
/// take (the directory is its owner's alone, each link is checked as
/// ptrace access). watch's socket-table fallback finds there which
/// process holds a socket. Neither lets it write, send or load anything.
pub fn drop_keeping_ptrace(id: Identity) -> Result<(), Error> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // SAFETY: keep the permitted set across setuid; checked.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return drop_to(id);
    }
    drop_to(id)?;
    let head = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let keep = (1 << CAP_SYS_PTRACE) | (1 << CAP_DAC_READ_SEARCH);
    let one = Data {
        effective: keep,
        permitted: keep,
        inheritable: 0,
    };
    let data = [
        one,
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a version-3 header and its two data words; the
    // keep flag is cleared after.
    let r = unsafe {
        let r = libc::syscall(libc::SYS_capset, &head as *const Header, data.as_ptr());
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
        r
    };
    if r != 0 {
        return Err(Error::DropPrivileges {
            reason: format!(
                "cannot keep CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH after dropping root: {}",
                std::io::Error::last_os_error()
            ),
        });
    }
    Ok(())
}
