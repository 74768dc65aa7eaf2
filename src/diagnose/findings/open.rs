//! An open port: who accepted the connection.

use super::{Case, Kind, Said, describe_hops};

/// SYN-ACK: from the host's distance, or from a proxy answering for it.
pub(super) fn open(c: &Case) -> Said {
    let (port, v, host) = (c.port, c.v, c.host);
    let summary = if c.answered_by_target() && host.hops.is_some() && v.hops != host.hops {
        format!(
            "Port {port} is open, but the SYN-ACK came from {} while the host's other replies come from {}: a proxy or load balancer on the path answers for it.",
            describe_hops(v.hops),
            describe_hops(host.hops)
        )
    } else {
        format!(
            "Port {port} is open: {} accepted the connection (SYN-ACK).",
            c.responder
        )
    };
    Said {
        kind: Kind::Open,
        summary,
        details: Vec::new(),
        application_error: None,
    }
}
