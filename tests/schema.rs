//! The JSON report against its documented schema (docs/report.schema.json,
//! explained field by field in docs/JSON.md): every output validates, the
//! schema rejects what it should, and the document names every field.
//! Live scans and diagnoses are validated in tests/scan_lab.rs and
//! tests/diagnose_lab.rs (root).

mod common;

use common::*;
use serde_json::Value;

fn analyze_json(args: &[&str]) -> Value {
    let mut full = vec!["analyze", "-o", "json"];
    full.extend_from_slice(args);
    let o = run(&full);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&o)))
}

fn captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    assert!(v.len() >= 8, "{v:?}");
    v
}

#[test]
fn every_report_and_line_validates() {
    let mut n = 0;
    for f in captures() {
        assert_valid_report(&analyze_json(&[&f]), &f);
        assert_valid_report(
            &analyze_json(&["--findings", &f]),
            &format!("--findings {f}"),
        );
        let o = run(&["analyze", "-o", "jsonl", &f]);
        for line in stdout(&o).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let errors = verdict_errors(&v);
            assert!(errors.is_empty(), "{f}: {line}: {errors:?}");
            n += 1;
        }
    }
    assert!(n > 40, "{n} lines");
    // Every file at once, with a bad one among them: inputs with an error.
    let mut all = captures();
    all.push("/nonexistent/missing.pcap".into());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let j = analyze_json(&refs);
    assert!(
        j["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["error"].is_string())
    );
    assert_valid_report(&j, "all captures and a missing file");
}

/// A schema that accepts anything proves nothing: these must fail.
#[test]
fn the_schema_rejects_what_the_document_rules_out() {
    let f = root().join("captures/nmap-v4.pcap");
    let good = analyze_json(&[f.to_str().unwrap()]);
    assert!(report_errors(&good).is_empty());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "unknown state",
            Box::new(|j| j["results"][0]["state"] = "opened".into()),
        ),
        (
            "filtered with a responder",
            Box::new(|j| {
                let r = j["results"].as_array_mut().unwrap();
                let f = r.iter_mut().find(|v| v["state"] == "filtered").unwrap();
                f["responder"] = "192.0.2.1".into();
            }),
        ),
        (
            "a missing field",
            Box::new(|j| {
                j["results"][0].as_object_mut().unwrap().remove("probes");
            }),
        ),
        (
            "an undocumented field",
            Box::new(|j| j["summary"]["surprise"] = 1.into()),
        ),
        (
            "a port beyond 65535",
            Box::new(|j| j["results"][0]["port"] = 70000.into()),
        ),
        (
            "another schema version",
            Box::new(|j| j["schema_version"] = 2.into()),
        ),
        (
            "an unknown skip reason",
            Box::new(|j| j["inputs"][0]["skipped_by_reason"]["weird"] = 1.into()),
        ),
        (
            "a negative count",
            Box::new(|j| j["summary"]["syns"] = (-1).into()),
        ),
    ];
    for (what, mutate) in mutations {
        let mut j = good.clone();
        mutate(&mut j);
        assert!(!report_errors(&j).is_empty(), "the schema accepted {what}");
    }
}

/// docs/JSON.md explains every field the schema allows.
#[test]
fn the_document_names_every_field() {
    let doc = std::fs::read_to_string(root().join("docs/JSON.md")).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap(),
    )
    .unwrap();
    let mut missing = Vec::new();
    let defs = &schema["$defs"];
    for part in [
        &schema,
        &defs["verdict"],
        &defs["summary"],
        &defs["input"],
        &defs["live_scan"],
        &defs["finding"],
        &defs["offline_findings"],
    ] {
        for field in part["properties"].as_object().unwrap().keys() {
            if !doc.contains(&format!("`{field}`")) && !doc.contains(&format!("`{field}[]`")) {
                missing.push(field.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/JSON.md does not name: {missing:?}"
    );
}
