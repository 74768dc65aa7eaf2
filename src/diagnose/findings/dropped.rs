//! Silence: dropped on the way while the host answers elsewhere, or no
//! answer at all; whether a slow re-probe answers (a rate limit, not a
//! drop); and where on the path the drop is.

use super::{Case, Kind, Said};
use crate::model::{PortTrace, Reason};
use serde::Serialize;
use std::net::IpAddr;

/// What connect() sees when nothing answers.
const ETIMEDOUT: &str = "connect() hangs, then fails with ETIMEDOUT \"Connection timed out\"";

/// Nothing answered on any probed port, and no router complained.
pub(super) fn no_answer_at_all(c: &Case) -> Said {
    let target = c.target;
    Said {
        kind: Kind::NoAnswerAtAll,
        summary: format!(
            "No answer at all: {target} answered none of the probed ports, and no router reported an error."
        ),
        details: vec![
            "The host is down, or a firewall drops everything to it (or the answers on the way back)."
                .into(),
        ],
        application_error: Some(ETIMEDOUT.into()),
    }
}

/// The asked port is silent while the host answers on others.
pub(super) fn host_up(c: &Case) -> Said {
    let (target, port) = (c.target, c.port);
    let summary = format!(
        "Dropped silently: {} probes to port {port} got no answer, while {target} answers on other ports ({}).",
        c.v.probes,
        c.host
            .answering
            .iter()
            .take(5)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Said {
        kind: Kind::DroppedHostUp,
        summary,
        details: vec![
            "The host is up: a firewall on it or on the path drops this port without a word (DROP)."
                .into(),
        ],
        application_error: Some(ETIMEDOUT.into()),
    }
}

/// A drop located at the host itself: a full accept queue looks the same.
pub fn full_backlog_note(port: u16) -> String {
    format!(
        "Also possible, with no firewall at all: a listener on port {port} whose accept queue is full (an application that stopped calling accept(), or accepts too slowly) makes Linux drop new SYNs exactly like a DROP rule. On the host, `ss -ltn 'sport = :{port}'` then shows Recv-Q above Send-Q, and `nstat -az TcpExtListenOverflows` grows; a slow re-probe that is answered now and then points there too."
    )
}

/// What probing a silent port again slowly (`probes` probes, `gap` apart)
/// showed: it answered (`answered`, a rate limit) or stayed silent.
pub fn slow_reprobe_note(
    probes: u32,
    gap: std::time::Duration,
    answered: Option<Reason>,
) -> String {
    let pace = match gap.as_millis() {
        1000 => "one a second".to_string(),
        ms => format!("{} s apart", ms as f64 / 1000.0),
    };
    match answered {
        Some(Reason::SynAck) => format!(
            "The first probes got no answer; probed again slowly ({probes} probes, {pace}) it answered SYN-ACK: the port is served but drops SYNs at times, as a listener does whose accept queue is full most of the time (the application accepts too slowly), not a firewall rule."
        ),
        Some(reason) => format!(
            "The first probes got no answer; probed again slowly ({probes} probes, {pace}) it answered ({}): the host or a router rate-limits its replies. This is not a drop.",
            reason.as_str()
        ),
        None => format!(
            "Probed again slowly ({probes} probes, {pace}): still no answer, so this is not a rate limit."
        ),
    }
}

/// Where a silent port's packets stop, from TTL-limited probes of it and of
/// a port that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropLocation {
    /// The last hop that still answered for the silent port (0: none).
    pub last_hop: u8,
    pub last_router: Option<IpAddr>,
    /// The hop at which the answering port's probes reached the host.
    pub host_hop: Option<u8>,
    /// Dropped at the last hop: by the host or as the last router hands it over.
    pub at_host: bool,
    pub text: String,
}

/// Locates a drop (the firewalk method): the silent port's probes are
/// answered with time-exceeded up to some hop, the reference port's get
/// farther; the drop is at or just after the last hop that answered.
pub fn locate_drop(
    target: IpAddr,
    silent: &PortTrace,
    reference: &PortTrace,
) -> Option<DropLocation> {
    if silent.reached_at().is_some() {
        return Some(DropLocation {
            last_hop: 0,
            last_router: None,
            host_hop: reference.reached_at(),
            at_host: false,
            text: format!(
                "The trace's probes to port {} were answered by the host: the drop is intermittent (rate limiting, or a firewall state that changed).",
                silent.port
            ),
        });
    }
    let host_hop = reference.reached_at();
    let (last_hop, last_router) = match silent.last_router() {
        Some(h) => (h.ttl, Some(h.from)),
        None => (0, None),
    };
    let text = match host_hop {
        Some(hh) if last_hop + 1 >= hh => format!(
            "Located at the last hop: probes to port {} got as far as hop {} ({}), the last router before {target} (hop {hh}), and no farther: {target} itself drops them, or that router drops them as it hands them over.",
            silent.port,
            last_hop,
            last_router
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        Some(hh) => {
            let next = reference
                .router_at(last_hop + 1)
                .map(|r| {
                    format!(
                        " (port {}'s probes were answered there by {r})",
                        reference.port
                    )
                })
                .unwrap_or_default();
            let at = if last_hop == 0 {
                "at or just after your own host, before the first router".to_string()
            } else {
                format!(
                    "at or just after hop {last_hop} ({})",
                    last_router
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into())
                )
            };
            format!(
                "Located {at}: probes to port {} get no answer from hop {}{next} on, while port {}'s reach {target} at hop {hh}.",
                silent.port,
                last_hop + 1,
                reference.port
            )
        }
        None => return None,
    };
    Some(DropLocation {
        last_hop,
        last_router,
        host_hop,
        at_host: host_hop.is_some_and(|hh| last_hop + 1 >= hh),
        text,
    })
}
