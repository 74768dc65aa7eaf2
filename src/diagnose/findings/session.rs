//! After the handshake: what an open port does with a connection (resets
//! it, closes it, speaks first, or waits for the client), and a device
//! that answers SYN-ACK on a host's behalf (a SYN proxy). Pure: verdicts
//! and handshake outcomes in, words out.

use super::{Finding, Kind};
use crate::model::{AfterHandshake, EventKind, State, Verdict};
use std::net::IpAddr;

/// A host whose probed ports answer SYN-ACK at least this often (and on at
/// least [`PROXY_MIN_OPEN`] ports) while some reset right after the
/// handshake: something answers for it.
const PROXY_SHARE: f64 = 0.75;
const PROXY_MIN_OPEN: usize = 8;

/// "0.2 ms", "1.5 s".
fn when(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// A SYN proxy (or a device like it): most probed ports answer SYN-ACK,
/// and some of them reset at once once the handshake is complete. Returns
/// the ports really served (those whose connection stayed or spoke).
pub fn proxied(verdicts: &[Verdict], after: &[AfterHandshake]) -> Option<(usize, usize, Vec<u16>)> {
    let open = verdicts.iter().filter(|v| v.state == State::Open).count();
    let probed = verdicts.len();
    let reset = after.iter().filter(|h| h.reset()).count();
    if open < PROXY_MIN_OPEN || (open as f64) < PROXY_SHARE * probed as f64 || reset == 0 {
        return None;
    }
    let mut served: Vec<u16> = after
        .iter()
        .filter(|h| h.connected && !h.reset())
        .map(|h| h.port)
        .collect();
    served.sort_unstable();
    Some((open, probed, served))
}

/// What the server did after the handshake on the asked port, in words:
/// a new finding (it resets or closes: the connection fails after all) or
/// details for the open port's finding (it speaks first, or waits).
pub enum Said {
    Fails {
        kind: Kind,
        summary: String,
        details: Vec<String>,
        application_error: String,
    },
    /// A sentence for the open port's summary, and details.
    Works(Option<String>, Vec<String>),
}

pub fn after_handshake(target: IpAddr, h: &AfterHandshake, unprivileged: bool) -> Said {
    let port = h.port;
    let first = h.first.as_ref();
    let unseen = unprivileged.then(|| {
        "Seen with connect() probes only: the reset's TTL is not visible, so whether the host itself or a device on the path sent it cannot be told.".to_string()
    });
    if h.reset() {
        let after = match first {
            Some(e) if e.kind == EventKind::Reset => {
                format!("{} after the handshake", when(e.at_ms))
            }
            _ => "before connect() even returned".to_string(),
        };
        let mut details = vec![
            "The SYN was answered (SYN-ACK) and the handshake completed, so this is not \"refused\": something accepted the connection, then gave up on it.".to_string(),
            "Likely: a listener whose handler crashes or rejects the client at once, a load balancer or reverse proxy with no healthy backend, a TLS-only port spoken to in clear, or a device on the path that resets it.".to_string(),
        ];
        details.extend(unseen);
        return Said::Fails {
            kind: Kind::AcceptsThenResets,
            summary: format!(
                "Accepted, then reset: port {port} of {target} completes the handshake, then resets the connection ({after})."
            ),
            details,
            application_error: "connect() (or the first read or write right after it) fails with ECONNRESET \"Connection reset by peer\"".into(),
        };
    }
    if !h.connected {
        let e = h.connect_error.clone().unwrap_or_else(|| "an error".into());
        return Said::Works(
            None,
            vec![format!(
                "A second connection, from user space, failed after {}: {e} (the SYN stage's answer was a SYN-ACK: the port may answer only some connections).",
                when(h.connect_ms)
            )],
        );
    }
    // What connect() probes see of the rest: all of it but the TTLs.
    let seen = |mut d: Vec<String>| {
        if unprivileged {
            d.push("Seen with connect() probes only: what the server did is seen in full; only the TTLs (who on the path sent it) are not.".into());
        }
        d
    };
    match first {
        Some(e) if e.kind == EventKind::Fin => Said::Fails {
            kind: Kind::AcceptsThenCloses,
            summary: format!(
                "Accepted, then closed: port {port} of {target} completes the handshake, then closes the connection without a byte ({} after the handshake).",
                when(e.at_ms)
            ),
            details: seen(vec![
                "Something accepts connections and closes them at once: a server that refuses this client after accepting (tcp wrappers, an IP allow-list in the application, too many connections), a proxy with no backend that closes instead of resetting, or a service that closes idle connections at once.".into(),
            ]),
            application_error: "connect() succeeds, then read() returns 0 at once: an empty reply (curl: \"Empty reply from server\")".into(),
        },
        Some(e) => {
            let text = e.text.clone().unwrap_or_default();
            let mut d = vec![format!(
                "After the handshake the server spoke first, {} later: \"{text}\" ({} bytes read). It serves: a banner like this names the service (SSH, SMTP, FTP, a database).",
                when(e.at_ms),
                e.bytes.unwrap_or(0)
            )];
            if let Some(t) = &h.then {
                d.push(format!(
                    "Then it {} the connection {} after the handshake.",
                    if t.kind == EventKind::Reset { "reset" } else { "closed" },
                    when(t.at_ms)
                ));
            }
            Said::Works(Some(format!("The server speaks first: \"{text}\".")), seen(d))
        }
        None => Said::Works(
            Some("The server waits for the client to speak first.".into()),
            seen(vec![format!(
                "After the handshake the server sent nothing for {}: it waits for the client to speak first, as HTTP, TLS and most databases do. Not a failure.",
                when(h.waited_ms)
            )]),
        ),
    }
}

/// The finding for a host a device answers for: `open` of `probed` ports
/// answered SYN-ACK, and only `served` keep a connection.
pub fn answered_on_behalf(
    target: IpAddr,
    port: u16,
    (open, probed, served): (usize, usize, Vec<u16>),
    evidence: Vec<super::EvidencePacket>,
) -> Finding {
    let list = if served.is_empty() {
        "none".to_string()
    } else {
        served
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let asked_served = served.contains(&port);
    Finding {
        target,
        port,
        kind: Kind::AnsweredOnBehalf,
        summary: format!(
            "A device answers SYN-ACK on {target}'s behalf: {open} of {probed} probed ports answered the SYN, but connections to most of them are reset once the handshake completes. Really served: {list}{}.",
            if asked_served {
                format!(" (port {port} among them)")
            } else {
                format!("; port {port} is not")
            }
        ),
        details: vec![
            "A SYN proxy (DDoS protection, iptables SYNPROXY), a load balancer or an intercepting proxy completes the handshake itself and opens the connection to the server only afterwards; where nothing serves, it resets. A SYN scan calls every such port open: only a completed connection tells.".into(),
        ],
        application_error: (!asked_served).then(|| {
            "connect() (or the first read or write right after it) fails with ECONNRESET \"Connection reset by peer\"".into()
        }),
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Reason};

    const T: &str = "198.18.2.2";

    fn h(port: u16, first: Option<(EventKind, f64)>) -> AfterHandshake {
        AfterHandshake {
            port,
            connected: true,
            connect_ms: 0.2,
            connect_error: None,
            first: first.map(|(kind, at_ms)| Event {
                kind,
                at_ms,
                text: (kind == EventKind::Data).then(|| "220 ready\\r\\n".into()),
                bytes: (kind == EventKind::Data).then_some(11),
            }),
            then: None,
            waited_ms: 2000.0,
        }
    }

    fn open(port: u16) -> Verdict {
        let mut v = Verdict::silent(T.parse().unwrap(), T.parse().unwrap(), port);
        v.state = State::Open;
        v.reason = Reason::SynAck;
        v
    }

    #[test]
    fn each_move_after_the_handshake_is_named() {
        let t: IpAddr = T.parse().unwrap();
        match after_handshake(t, &h(7001, Some((EventKind::Reset, 0.6))), false) {
            Said::Fails {
                kind,
                summary,
                application_error,
                ..
            } => {
                assert_eq!(kind, Kind::AcceptsThenResets);
                assert!(
                    summary.contains("(0.6 ms after the handshake)"),
                    "{summary}"
                );
                assert!(application_error.contains("ECONNRESET"));
            }
            Said::Works(..) => panic!("a reset is a failure"),
        }
        match after_handshake(t, &h(7002, Some((EventKind::Fin, 0.3))), false) {
            Said::Fails {
                kind,
                application_error,
                ..
            } => {
                assert_eq!(kind, Kind::AcceptsThenCloses);
                assert!(application_error.contains("read() returns 0"));
            }
            Said::Works(..) => panic!("a close without a byte is a failure"),
        }
        match after_handshake(t, &h(25, Some((EventKind::Data, 0.4))), false) {
            Said::Works(Some(s), d) => {
                assert_eq!(s, "The server speaks first: \"220 ready\\r\\n\".");
                assert!(d[0].contains("11 bytes read"), "{d:?}");
            }
            _ => panic!("a banner is no failure"),
        }
        match after_handshake(t, &h(443, None), false) {
            Said::Works(Some(s), d) => {
                assert!(s.contains("waits for the client"));
                assert!(d[0].contains("2.0 s"), "{d:?}");
            }
            _ => panic!("silence is no failure"),
        }
        // A reset in connect() itself (a SYN proxy's), unprivileged: said,
        // with what that mode cannot see.
        let mut r = h(81, None);
        r.connected = false;
        r.connect_error = Some("ECONNRESET \"Connection reset by peer\"".into());
        match after_handshake(t, &r, true) {
            Said::Fails {
                summary, details, ..
            } => {
                assert!(
                    summary.contains("before connect() even returned"),
                    "{summary}"
                );
                assert!(details.iter().any(|d| d.contains("cannot be told")));
            }
            Said::Works(..) => panic!("a reset is a failure"),
        }
    }

    #[test]
    fn a_device_answering_for_most_ports_is_told_from_a_busy_host() {
        let ports: Vec<u16> = (20..30).collect();
        let verdicts: Vec<Verdict> = ports.iter().map(|p| open(*p)).collect();
        // Every port answered SYN-ACK; only 22 keeps a connection.
        let after: Vec<AfterHandshake> = ports
            .iter()
            .map(|&p| {
                if p == 22 {
                    h(p, None)
                } else {
                    h(p, Some((EventKind::Reset, 0.1)))
                }
            })
            .collect();
        assert_eq!(proxied(&verdicts, &after), Some((10, 10, vec![22])));
        // Nothing reset: a host that serves everything it answers.
        let kept: Vec<AfterHandshake> = ports.iter().map(|&p| h(p, None)).collect();
        assert_eq!(proxied(&verdicts, &kept), None);
        // Few ports open: no pattern, even with a reset among them.
        let mut few = verdicts.clone();
        for v in few.iter_mut().skip(3) {
            v.state = State::Refused;
        }
        assert_eq!(proxied(&few, &after), None);
    }
}
