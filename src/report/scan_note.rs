//! The line a scan's table report closes with: what was sent and answered,
//! from which port, how long it took and the seed that replays its order;
//! and, before it, a warning when the scan did not end.

use crate::model::ScanInfo;

/// The closing note of a scan's table, each line ending in a newline.
pub fn scan_note(info: &ScanInfo) -> String {
    let e = info.engine;
    format!(
        "{}Scan: {} probes ({} retransmitted, {} answered, {} unanswered) from {} in {:.2} s; seed {}.\n",
        if info.partial {
            "PARTIAL: the scan did not end (interrupted, or its capture failed); the verdicts above are the ones reached so far.\n"
        } else {
            ""
        },
        e.sent,
        e.retransmitted,
        e.answered,
        e.unanswered,
        if info.source_port == 0 {
            "the kernel's ports (connect())".to_string()
        } else {
            format!("port {}", info.source_port)
        },
        info.duration_s,
        info.seed
    )
}

#[cfg(test)]
mod tests {
    use super::scan_note;
    use crate::model::{EngineStats, ScanInfo};

    fn info(partial: bool, source_port: u16) -> ScanInfo {
        ScanInfo {
            partial,
            capture_error: None,
            ran_as_uid: 0,
            engine: EngineStats {
                sent: 3,
                retransmitted: 2,
                answered: 1,
                unanswered: 2,
                ..EngineStats::default()
            },
            captures: Vec::new(),
            not_captured: 0,
            send_errors: 0,
            seed: 42,
            source_port,
            duration_s: 1.234,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn says_what_was_sent_from_where_and_the_seed() {
        assert_eq!(
            scan_note(&info(false, 40000)),
            "Scan: 3 probes (2 retransmitted, 1 answered, 2 unanswered) from port 40000 in 1.23 s; seed 42.\n"
        );
        assert_eq!(
            scan_note(&info(false, 0)),
            "Scan: 3 probes (2 retransmitted, 1 answered, 2 unanswered) from the kernel's ports (connect()) in 1.23 s; seed 42.\n"
        );
    }

    #[test]
    fn a_scan_that_did_not_end_says_so_first() {
        let note = scan_note(&info(true, 40000));
        assert!(note.starts_with("PARTIAL: the scan did not end"), "{note}");
        assert_eq!(note.lines().count(), 2);
        assert!(note.lines().nth(1).unwrap().starts_with("Scan: 3 probes"));
    }
}
