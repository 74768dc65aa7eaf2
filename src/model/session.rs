//! What a completed handshake showed: a connect() from user space to an
//! open port, held a short while to see the server's first move.

use serde::Serialize;

/// The server's move after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// It sent data (a banner).
    Data,
    /// It closed the connection (FIN): read() returned 0.
    Fin,
    /// It reset the connection (RST): ECONNRESET.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// Milliseconds after connect() returned.
    pub at_ms: f64,
    /// Data: its first bytes, printable (others as \xNN), at most 64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Data: bytes read in all within the wait (at most 4 KiB are read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AfterHandshake {
    pub port: u16,
    /// connect() succeeded (the handshake completed).
    pub connected: bool,
    /// How long connect() took (until it failed, when it did).
    pub connect_ms: f64,
    /// Why connect() failed, as the application sees it
    /// (`ECONNRESET "Connection reset by peer"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_error: Option<String>,
    /// The server's first move within the wait; none: it sent nothing
    /// (it waits for the client to speak first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<Event>,
    /// After data: a close or reset within the wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<Event>,
    /// How long it waited for the server's move, milliseconds.
    pub waited_ms: f64,
}

impl AfterHandshake {
    /// The connection was reset, in connect() or just after it.
    pub fn reset(&self) -> bool {
        self.first
            .as_ref()
            .is_some_and(|e| e.kind == EventKind::Reset)
            || self
                .connect_error
                .as_deref()
                .is_some_and(|e| e.starts_with("ECONNRESET"))
    }
}

/// Bytes as text: printable ASCII as is, `\r` `\n` `\t` escaped, the rest
/// as `\xNN`; at most `max` bytes.
pub fn printable(data: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in data.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn bytes_become_printable_text() {
        assert_eq!(printable(b"SSH-2.0-x\r\n", 64), "SSH-2.0-x\\r\\n");
        assert_eq!(printable(&[0x16, 0x03, 0x01, b'a'], 64), "\\x16\\x03\\x01a");
        assert_eq!(printable(b"abcdef", 3), "abc");
    }
}
