//! `analyze` over every capture of ../shared/corpus (415 files from
//! tcpdump's test suite, many crafted to crash parsers): no panic, no hang,
//! bounded memory, and either a report or one clear line per file.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PER_FILE: Duration = Duration::from_secs(30);
const MAX_RSS_KIB: i64 = 256 * 1024;

#[test]
fn every_corpus_capture_gives_a_report_or_one_line() {
    let dir = root().join("../shared/corpus/tcpdump-tests");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        skip_or_fail(&format!("no corpus at {}", dir.display()));
        return;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 400, "corpus has {} files", files.len());
    let (mut reports, mut refused) = (0, 0);
    let mut with_results = 0;
    for f in &files {
        let mut child = bin()
            .args(["analyze", "--format", "json"])
            .arg(f)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if start.elapsed() > PER_FILE {
                let _ = child.kill();
                panic!("{}: no answer within {PER_FILE:?} (hang)", f.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        let code = o.status.code();
        assert!(!err.contains("panicked"), "{}: {err}", f.display());
        assert!(
            matches!(code, Some(0) | Some(2)),
            "{}: exit {code:?}: {err}",
            f.display()
        );
        assert!(
            err.lines().count() <= 1,
            "{}: more than one line:\n{err}",
            f.display()
        );
        if let Some(line) = err.lines().next() {
            assert!(
                line.starts_with(&format!("synscope: {}: ", f.display())),
                "{line}"
            );
            assert_eq!(code, Some(2), "an error line goes with exit 2: {line}");
        }
        if o.stdout.is_empty() {
            assert_eq!(code, Some(2), "{}: no report and no error", f.display());
            refused += 1;
        } else {
            let j: serde_json::Value = serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| panic!("{}: report is not JSON: {e}", f.display()));
            reports += 1;
            if !j["results"].as_array().is_none_or(|r| r.is_empty()) {
                with_results += 1;
            }
        }
    }
    // SAFETY: getrusage fills the struct it is given.
    let rss = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    };
    println!(
        "corpus: {} files, {reports} reports ({with_results} with TCP attempts), {refused} refused with one line; peak child RSS {} KiB",
        files.len(),
        rss
    );
    assert!(rss < MAX_RSS_KIB, "peak RSS {rss} KiB");
    assert_eq!(reports + refused, files.len());
}

/// The whole corpus as one directory, read on several threads: one line per
/// bad file (the same lines as one file at a time), a report of every
/// other, and the same report whatever -j.
#[test]
fn the_corpus_as_one_directory() {
    let dir = root().join("../shared/corpus/tcpdump-tests");
    if !dir.is_dir() {
        skip_or_fail(&format!("no corpus at {}", dir.display()));
        return;
    }
    let mut reports = Vec::new();
    for jobs in ["1", "3"] {
        let child = bin()
            .args(["analyze", "--format", "json", "-j", jobs])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        // Read both pipes while waiting (the report is larger than a pipe).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Ok(o) = rx.recv_timeout(PER_FILE) else {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the corpus directory took more than {PER_FILE:?} (hang)");
        };
        let o = o.unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(o.status.code(), Some(2), "bad files among them: exit 2");
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON report");
        assert_valid_report(&j, "the corpus");
        let inputs = j["inputs"].as_array().unwrap();
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(inputs.len(), files, "one input per file");
        let bad = inputs.iter().filter(|i| i["error"].is_string()).count();
        assert_eq!(err.lines().count(), bad, "one line per bad file:\n{err}");
        assert!(bad > 50 && bad < files, "{bad} of {files} bad");
        reports.push(o.stdout);
    }
    assert_eq!(reports[0], reports[1], "-j 1 and -j 3 differ");
}

/// The two readers (synscope's own, and libpcap's with
/// `SYNSCOPE_READER=libpcap`) give the same report for every corpus file
/// and every shipped capture: the same verdicts, the same counters, and an
/// error where the other has one. The only difference allowed: a pcapng
/// file whose interfaces have different link types, which libpcap refuses
/// and synscope's reader reads.
#[test]
fn both_readers_give_the_same_report() {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in [
        root().join("../shared/corpus/tcpdump-tests"),
        root().join("captures"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            skip_or_fail(&format!("no captures at {}", dir.display()));
            return;
        };
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.retain(|f| f.is_file() && !f.extension().is_some_and(|e| e == "md" || e == "txt"));
    files.sort();
    let run = |f: &std::path::Path, libpcap: bool| {
        let mut c = bin();
        c.args(["analyze", "--format", "json"]).arg(f);
        if libpcap {
            c.env("SYNSCOPE_READER", "libpcap");
        } else {
            c.env_remove("SYNSCOPE_READER");
        }
        let o = c.output().unwrap();
        let j: Option<serde_json::Value> = serde_json::from_slice(&o.stdout).ok();
        (o.status.code(), j, stderr(&o))
    };
    let mut differ = Vec::new();
    let mut multi_link = 0;
    for f in &files {
        let (c1, j1, e1) = run(f, false);
        let (c2, j2, e2) = run(f, true);
        if e2.contains("different from the type of the first interface") {
            multi_link += 1;
            continue;
        }
        let part = |j: &Option<serde_json::Value>| {
            j.as_ref().map(|j| {
                let mut i = j["inputs"][0].clone();
                // The error's words may differ; whether there is one may not.
                let had = i.get("error").is_some();
                if let Some(o) = i.as_object_mut() {
                    o.remove("error");
                    o.insert("had_error".into(), had.into());
                }
                (j["results"].clone(), j["summary"].clone(), i)
            })
        };
        if c1 != c2 || part(&j1) != part(&j2) || e1.is_empty() != e2.is_empty() {
            differ.push(format!(
                "{}: exit {c1:?} / {c2:?}\n  ours:    {e1}\n  libpcap: {e2}\n  {:?}\n  {:?}",
                f.display(),
                part(&j1).map(|p| p.2),
                part(&j2).map(|p| p.2)
            ));
        }
    }
    assert!(files.len() > 400, "{} files", files.len());
    assert!(
        differ.is_empty(),
        "{} of {} files differ ({multi_link} multi-link pcapng left out):\n{}",
        differ.len(),
        files.len(),
        differ.join("\n")
    );
}
