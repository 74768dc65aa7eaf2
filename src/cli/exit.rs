//! Exit codes (README, "Exit codes"), and which one each command ends with.
//!
//! | code | meaning |
//! | --- | --- |
//! | [`EXIT_OK`] 0 | ran, and every port asked about (scan, diagnose, analyze `-p`) answered as open |
//! | [`EXIT_NOT_OPEN`] 1 | ran, and some port asked about is not open |
//! | [`EXIT_INPUT`] 2 | usage or input error (clap's own errors exit 2 too) |
//! | [`EXIT_RUNTIME`] 3 | runtime error, the report could not be written among them |
//! | [`EXIT_INTERRUPTED`] 130 | interrupted (the shell's convention for SIGINT) |
//!
//! A report that could not be written (to `--output FILE`, `--report FILE`
//! or stdout) makes the code [`EXIT_RUNTIME`] whatever the verdicts; a
//! reader that went away (`| head`) does not: the report counts as written.

use crate::diagnose::{Diagnosis, Kind};
use crate::model::{ScanInfo, State, Verdict};
use crate::select::PortSet;

pub const EXIT_OK: u8 = 0;
pub const EXIT_NOT_OPEN: u8 = 1;
pub const EXIT_INPUT: u8 = 2;
pub const EXIT_RUNTIME: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

/// 0 when there is at least one verdict and every one is open (the port
/// answered with a SYN-ACK), 1 otherwise: `synscope scan host -p 443 && deploy`
/// works like `nc -z`.
pub fn verdict_code(results: &[Verdict]) -> u8 {
    if !results.is_empty() && results.iter().all(|v| v.state == State::Open) {
        EXIT_OK
    } else {
        EXIT_NOT_OPEN
    }
}

/// analyze: 2 when an input could not be read; otherwise, with `-p`, every
/// port asked about must have been seen and every attempt answered as open
/// (`analyze -p 443 cap && ...`); without `-p`, 0.
pub fn analyze_code(input_errors: bool, asked: Option<&PortSet>, results: &[Verdict]) -> u8 {
    if input_errors {
        return EXIT_INPUT;
    }
    let Some(asked) = asked else {
        return EXIT_OK;
    };
    let seen: std::collections::HashSet<u16> = results.iter().map(|v| v.port).collect();
    if asked.iter().all(|p| seen.contains(&p)) {
        verdict_code(results)
    } else {
        EXIT_NOT_OPEN
    }
}

/// scan, once its report is written: 3 when the capture failed (the scan
/// could not finish), 130 when it was interrupted, else the verdicts'.
pub fn scan_code(info: &ScanInfo, results: &[Verdict]) -> u8 {
    if info.capture_error.is_some() {
        EXIT_RUNTIME
    } else if info.partial {
        EXIT_INTERRUPTED
    } else {
        verdict_code(results)
    }
}

/// diagnose, once its report is written: 2 when the name resolved to no
/// address (nothing could be probed); 0 when the port is open on every
/// address of the name, 1 otherwise.
pub fn diagnose_code(d: &Diagnosis) -> u8 {
    if d.addresses.is_empty() {
        return EXIT_INPUT;
    }
    // Open, and a connection to it held: one reset or closed at once
    // after the handshake, or answered by a device where nothing serves,
    // fails for applications all the same.
    let fails_after = |a: &crate::diagnose::AddressDiagnosis| {
        a.findings.first().is_some_and(|f| {
            f.port == d.port
                && matches!(
                    f.kind,
                    Kind::AcceptsThenResets | Kind::AcceptsThenCloses | Kind::AnsweredOnBehalf
                )
        })
    };
    let every_address = d.addresses.iter().all(|a| {
        a.results
            .iter()
            .any(|v| v.port == d.port && v.state == State::Open)
            && !fails_after(a)
    });
    if every_address {
        EXIT_OK
    } else {
        EXIT_NOT_OPEN
    }
}

/// Bad usage or input: one line, and the code for it.
pub fn input_error(what: &dyn std::fmt::Display) -> u8 {
    eprintln!("synscope: {what}");
    EXIT_INPUT
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8080 open and 8081 refused, from the shipped capture.
    fn wrong_port() -> Vec<Verdict> {
        let mut a = crate::analyze::Analyzer::new(crate::analyze::Options::default());
        a.add_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/wrong-port.pcap"),
        );
        let results = a.finish().results;
        assert_eq!(results.len(), 2);
        results
    }

    #[test]
    fn every_verdict_open_and_at_least_one() {
        let both = wrong_port();
        let open: Vec<Verdict> = both.iter().filter(|v| v.port == 8080).cloned().collect();
        assert_eq!(verdict_code(&[]), EXIT_NOT_OPEN);
        assert_eq!(verdict_code(&open), EXIT_OK);
        assert_eq!(verdict_code(&both), EXIT_NOT_OPEN);
    }

    #[test]
    fn analyze_asks_every_port_of_p_to_be_seen_open() {
        let both = wrong_port();
        let p = |s: &str| s.parse::<PortSet>().unwrap();
        assert_eq!(analyze_code(false, None, &[]), EXIT_OK);
        assert_eq!(analyze_code(false, None, &both), EXIT_OK);
        assert_eq!(analyze_code(true, None, &both), EXIT_INPUT);
        assert_eq!(analyze_code(true, Some(&p("8080")), &both), EXIT_INPUT);
        // -p narrows the selection: the verdicts are of the asked ports only.
        let open: Vec<Verdict> = both.iter().filter(|v| v.port == 8080).cloned().collect();
        assert_eq!(analyze_code(false, Some(&p("8080")), &open), EXIT_OK);
        assert_eq!(
            analyze_code(false, Some(&p("8080,443")), &open),
            EXIT_NOT_OPEN
        );
        assert_eq!(
            analyze_code(false, Some(&p("8080,8081")), &both),
            EXIT_NOT_OPEN
        );
    }
}
