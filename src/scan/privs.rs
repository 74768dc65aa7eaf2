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
