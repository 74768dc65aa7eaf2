//! Writing captures (pcap, nanosecond timestamps) through libpcap, atomically:
//! the frames go to a temporary file beside the destination, renamed over it
//! only when complete, so an existing file is never left half-written.

use crate::error::Error;
use crate::model::{NANOS_PER_SEC, Nanos};
use crate::wire::LinkType;
use pcap::{Capture, Dead, Linktype, Packet, PacketHeader, Precision, Savefile};
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct PcapWriter {
    _dead: Capture<Dead>,
    file: Savefile,
    tmp: PathBuf,
    dest: PathBuf,
}

impl PcapWriter {
    /// Starts a capture file for frames of `link`. Errors are one line
    /// naming the file.
    pub fn create(dest: &Path, link: LinkType) -> Result<PcapWriter, Error> {
        let fail = |reason: String| write_error(dest, reason);
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| fail("not a usable file name".into()))?;
        let tmp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let tmp_str = tmp
            .to_str()
            .ok_or_else(|| fail("file name is not valid UTF-8".into()))?;
        let dead = Capture::dead_with_precision(Linktype(link.0), Precision::Nano)
            .map_err(|e| fail(format!("cannot start a capture file: {e}")))?;
        // Our own new file (O_EXCL, O_NOFOLLOW): a symlink or file planted
        // at the temporary name makes this fail instead of being followed.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| fail(format!("cannot create {tmp_str}: {e}")))?;
        // SAFETY: the Savefile takes sole ownership of the descriptor.
        let file = unsafe { dead.savefile_raw_fd(f.into_raw_fd()) }
            .map_err(|e| fail(format!("cannot write {tmp_str}: {e}")))?;
        Ok(PcapWriter {
            _dead: dead,
            file,
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Gives the file being written to `uid`/`gid` (before a scan drops
    /// root, so it can still finish and move it into place).
    pub fn chown(&self, uid: u32, gid: u32) -> Result<(), Error> {
        std::os::unix::fs::chown(&self.tmp, Some(uid), Some(gid))
            .map_err(|e| write_error(&self.dest, format!("cannot hand it to uid {uid}: {e}")))
    }

    pub fn write(&mut self, ts: Nanos, orig_len: u32, data: &[u8]) {
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: (ts / NANOS_PER_SEC) as libc::time_t,
                // With nanosecond precision libpcap reads nanoseconds here.
                tv_usec: (ts % NANOS_PER_SEC) as libc::suseconds_t,
            },
            caplen,
            len: orig_len.max(caplen),
        };
        self.file.write(&Packet::new(&header, data));
    }

    /// Flushes and moves the file into place.
    pub fn finish(mut self) -> Result<(), Error> {
        if let Err(e) = self.file.flush() {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(write_error(&self.dest, format!("writing failed: {e}")));
        }
        drop(self.file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            let _ = std::fs::remove_file(&self.tmp);
            write_error(
                &self.dest,
                format!("cannot move the finished capture into place: {e}"),
            )
        })
    }
}

fn write_error(path: &Path, reason: String) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        reason,
    }
}
