//! After the SYN: a real handshake from user space (connect()) to an open
//! port, held a short while to see the server's first move: data (a
//! banner), a close, a reset, or nothing (it waits for the client). The
//! network is behind [`Connector`], so diagnose's use of it is tested with
//! a fake.

use crate::model::{AfterHandshake, Event, EventKind, printable};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long connect() may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes read from a server that talks, at most.
const READ_AT_MOST: usize = 4096;
/// Bytes of its data kept as text.
const TEXT: usize = 64;
/// Connections held at once.
const PARALLEL: usize = 32;

/// Opens a connection and watches it for `hold`.
pub trait Connector: Sync {
    fn connect_hold(&self, addr: SocketAddr, hold: Duration) -> AfterHandshake;
}

/// The system's TCP stack (std's TcpStream: a plain connect(), no
/// privilege needed).
pub struct SystemConnector;

/// `ECONNRESET "Connection reset by peer"`, as an application sees it.
pub fn errno_text(e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::ECONNRESET) => "ECONNRESET",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPIPE) => "EPIPE",
        _ if e.kind() == ErrorKind::TimedOut => "ETIMEDOUT",
        _ => "error",
    };
    // std's message ends with " (os error N)".
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{name} \"{text}\"")
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Connector for SystemConnector {
    fn connect_hold(&self, addr: SocketAddr, hold: Duration) -> AfterHandshake {
        let start = Instant::now();
        let mut out = AfterHandshake {
            port: addr.port(),
            connected: false,
            connect_ms: 0.0,
            connect_error: None,
            first: None,
            then: None,
            waited_ms: 0.0,
        };
        let mut s = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                out.connect_ms = ms(start.elapsed());
                out.connect_error = Some(errno_text(&e));
                return out;
            }
        };
        out.connected = true;
        let connected = Instant::now();
        out.connect_ms = ms(connected - start);
        let mut data: Vec<u8> = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let left = hold.saturating_sub(connected.elapsed());
            if left.is_zero() {
                break;
            }
            if s.set_read_timeout(Some(left)).is_err() {
                break;
            }
            let at = || ms(connected.elapsed());
            let ev = match s.read(&mut buf) {
                Ok(0) => Some(Event {
                    kind: EventKind::Fin,
                    at_ms: at(),
                    text: None,
                    bytes: None,
                }),
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    if out.first.is_none() {
                        out.first = Some(Event {
                            kind: EventKind::Data,
                            at_ms: at(),
                            text: None,
                            bytes: None,
                        });
                    }
                    if data.len() >= READ_AT_MOST {
                        break;
                    }
                    None
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(Event {
                    kind: EventKind::Reset,
                    at_ms: at(),
                    text: None,
                    bytes: None,
                }),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => None,
                Err(_) => break,
            };
            if let Some(ev) = ev {
                if out.first.is_none() {
                    out.first = Some(ev);
                } else {
                    out.then = Some(ev);
                }
                break;
            }
        }
        if let Some(first) = out.first.as_mut()
            && first.kind == EventKind::Data
        {
            first.text = Some(printable(&data, TEXT));
            first.bytes = Some(data.len());
        }
        out.waited_ms = ms(connected.elapsed());
        out
    }
}

/// [`Connector::connect_hold`] for each of `addrs`, at most [`PARALLEL`]
/// at once (so many ports take about `hold`, not `hold` each), in order.
pub fn connect_all(c: &dyn Connector, addrs: &[SocketAddr], hold: Duration) -> Vec<AfterHandshake> {
    let mut out = Vec::with_capacity(addrs.len());
    for chunk in addrs.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|a| s.spawn(move || c.connect_hold(*a, hold)))
                .collect();
            for (h, a) in handles.into_iter().zip(chunk) {
                out.push(h.join().unwrap_or_else(|_| AfterHandshake {
                    port: a.port(),
                    connected: false,
                    connect_ms: 0.0,
                    connect_error: Some("error \"the connection's thread failed\"".into()),
                    first: None,
                    then: None,
                    waited_ms: 0.0,
                }));
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// Loopback only: listeners of this test's own, on 127.0.0.1.
    #[test]
    fn sees_data_close_reset_and_silence_on_loopback() {
        let hold = Duration::from_millis(300);
        let banner = TcpListener::bind("127.0.0.1:0").unwrap();
        let close = TcpListener::bind("127.0.0.1:0").unwrap();
        let reset = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addrs: Vec<SocketAddr> = [&banner, &close, &reset, &silent]
            .iter()
            .map(|l| l.local_addr().unwrap())
            .collect();
        let server = std::thread::spawn(move || {
            let (mut b, _) = banner.accept().unwrap();
            b.write_all(b"220 ready\r\n").unwrap();
            let (c, _) = close.accept().unwrap();
            drop(c);
            let (r, _) = reset.accept().unwrap();
            socket2::SockRef::from(&r)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(r);
            let (s, _) = silent.accept().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            drop((b, s));
        });
        let got = connect_all(&SystemConnector, &addrs, hold);
        server.join().unwrap();
        // The reset listener's RST can reach the socket before connect()
        // is seen done (under load): connect() then fails with ECONNRESET.
        let reset_first = got[2]
            .connect_error
            .as_deref()
            .is_some_and(|e| e.starts_with("ECONNRESET"));
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, h)| h.connected || (i == 2 && reset_first)),
            "{got:?}"
        );
        let first = |i: usize| got[i].first.as_ref().map(|e| e.kind);
        assert_eq!(first(0), Some(EventKind::Data));
        assert_eq!(
            got[0].first.as_ref().unwrap().text.as_deref(),
            Some("220 ready\\r\\n")
        );
        assert_eq!(got[0].first.as_ref().unwrap().bytes, Some(11));
        assert_eq!(first(1), Some(EventKind::Fin));
        assert!(got[2].reset() || reset_first, "{:?}", got[2]);
        assert_eq!(first(3), None, "the silent server sent nothing");
        assert!(got[3].waited_ms >= 290.0, "{:?}", got[3]);
        // A port where nothing listens: connect() fails, said as errno.
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = free.local_addr().unwrap();
        drop(free);
        let h = SystemConnector.connect_hold(a, hold);
        assert!(!h.connected);
        assert_eq!(
            h.connect_error.as_deref(),
            Some("ECONNREFUSED \"Connection refused\"")
        );
    }
}
