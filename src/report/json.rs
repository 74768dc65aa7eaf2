//! The JSON report. Its contract is documented in docs/JSON.md; bump
//! [`SCHEMA_VERSION`] on any incompatible change.

use crate::model::{Analysis, SCHEMA_VERSION, Verdict};
use serde::Serialize;
use std::io::Write;

/// Writes the report as one compact JSON document and a newline (`jq .`
/// pretty-prints it; compact keeps a 65,535-port report fast to write).
/// Fails only as the writer does.
/// `scan` (live scans only) describes how the scan went.
pub fn write_json<W: std::io::Write, S: Serialize>(
    a: &Analysis,
    scan: Option<&S>,
    w: W,
) -> std::io::Result<()> {
    write_document(a, scan, None::<&()>, w)
}

/// The report of `watch`: the verdicts and what the watch saw besides
/// (`watch`: programs, patterns, DNS failures, how names were found).
pub fn write_watch_json<W: std::io::Write, S: Serialize>(
    a: &Analysis,
    watch: &S,
    w: W,
) -> std::io::Result<()> {
    write_document(a, None::<&()>, Some(watch), w)
}

fn write_document<W: std::io::Write, S: Serialize, T: Serialize>(
    a: &Analysis,
    scan: Option<&S>,
    watch: Option<&T>,
    mut w: W,
) -> std::io::Result<()> {
    // A buffer of this function's own type: serde_json writes a token at a
    // time, and through a `dyn Write` every token would be a call that
    // cannot be inlined (a third of a 65,535-port scan's user time).
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, &mut w);
    // The document as `Document` derives it, field by field, so that the
    // results can be rendered apart (see `write_results`); a test holds
    // the two to the same bytes.
    fn put<X: std::io::Write, V: Serialize + ?Sized>(
        w: &mut X,
        name: &str,
        v: &V,
    ) -> std::io::Result<()> {
        write!(w, ",\"{name}\":")?;
        serde_json::to_writer(w, v).map_err(std::io::Error::from)
    }
    write!(buf, "{{\"schema_version\":{SCHEMA_VERSION},\"results\":")?;
    write_results(&a.results, &mut buf)?;
    put(&mut buf, "summary", &a.summary)?;
    put(&mut buf, "inputs", &a.inputs)?;
    if let Some(scan) = scan {
        put(&mut buf, "scan", scan)?;
    }
    if let Some(watch) = watch {
        put(&mut buf, "watch", watch)?;
    }
    buf.write_all(b"}\n")?;
    buf.flush()?;
    drop(buf);
    w.flush()
}

/// Verdicts rendered on every CPU past this many.
const PARALLEL_FROM: usize = 8192;
/// Verdicts a part rendered on its own holds.
const PART: usize = 4096;

/// The results array. A large one is rendered in parts on every CPU and
/// written in order: serde_json runs at about 1 GB/s, and the 19 MB of a
/// 65,535-port report was a sixteenth of a big analysis's wall time, with
/// the other CPU idle (the pipeline is done by then).
fn write_results<W: std::io::Write>(results: &[Verdict], w: &mut W) -> std::io::Result<()> {
    use rayon::prelude::*;
    fn render<X: std::io::Write>(vs: &[Verdict], w: &mut X) -> std::io::Result<()> {
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, v).map_err(std::io::Error::from)?;
        }
        Ok(())
    }
    w.write_all(b"[")?;
    if results.len() < PARALLEL_FROM {
        render(results, w)?;
    } else {
        let parts: Vec<std::io::Result<Vec<u8>>> = results
            .par_chunks(PART)
            .map(|vs| {
                let mut out = Vec::with_capacity(vs.len() * 320);
                render(vs, &mut out).map(|()| out)
            })
            .collect();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            w.write_all(&part?)?;
        }
    }
    w.write_all(b"]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputSummary, Summary};

    /// The report's shape (`write_document` writes it field by field).
    #[derive(Serialize)]
    struct Document<'a, S: Serialize, W: Serialize> {
        schema_version: u32,
        results: &'a [Verdict],
        summary: &'a Summary,
        inputs: &'a [InputSummary],
        #[serde(skip_serializing_if = "Option::is_none")]
        scan: Option<&'a S>,
        #[serde(skip_serializing_if = "Option::is_none")]
        watch: Option<&'a W>,
    }

    /// What serde derives for the whole document, and a newline.
    fn derived<S: Serialize, W: Serialize>(
        a: &Analysis,
        scan: Option<&S>,
        watch: Option<&W>,
    ) -> Vec<u8> {
        let doc = Document {
            schema_version: SCHEMA_VERSION,
            results: &a.results,
            summary: &a.summary,
            inputs: &a.inputs,
            scan,
            watch,
        };
        let mut v = serde_json::to_vec(&doc).unwrap();
        v.push(b'\n');
        v
    }

    fn analysis(n: usize) -> Analysis {
        let results = (0..n)
            .map(|i| {
                let mut v = Verdict::silent(
                    "198.51.100.2".parse().unwrap(),
                    format!("203.0.113.{}", i % 250).parse().unwrap(),
                    (i % 65_536) as u16,
                );
                v.probes = i as u32;
                if i % 3 == 0 {
                    v.rtt_ms = Some(i as f64 / 7.0);
                    v.ttls = vec![63, 64];
                }
                if i % 5 == 0 {
                    v.name = Some(format!("h\"ost\\{i}.example"));
                }
                v
            })
            .collect();
        let inputs = vec![InputSummary {
            file: "a \"b\".pcap".into(),
            ..Default::default()
        }];
        Analysis::from_parts(results, inputs)
    }

    #[test]
    fn the_document_is_what_serde_derives_in_one_part_or_many() {
        // Empty, one part, and parts rendered apart (with a short last).
        for n in [0, 1, 7, PARALLEL_FROM - 1, PARALLEL_FROM, 3 * PART + 17] {
            let a = analysis(n);
            let mut got = Vec::new();
            write_json(&a, None::<&()>, &mut got).unwrap();
            assert_eq!(got, derived(&a, None::<&()>, None::<&()>), "{n} verdicts");
            let scan = serde_json::json!({"rate": 10, "note": "x"});
            let mut got = Vec::new();
            write_json(&a, Some(&scan), &mut got).unwrap();
            assert_eq!(got, derived(&a, Some(&scan), None::<&()>), "{n}, scan");
            let watch = vec!["p1", "p2"];
            let mut got = Vec::new();
            write_watch_json(&a, &watch, &mut got).unwrap();
            assert_eq!(got, derived(&a, None::<&()>, Some(&watch)), "{n}, watch");
        }
        // And it parses.
        let mut got = Vec::new();
        write_json(&analysis(PARALLEL_FROM + 1), None::<&()>, &mut got).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(
            v["results"].as_array().map(Vec::len),
            Some(PARALLEL_FROM + 1)
        );
    }
}
