//! What nmap users type, met before clap sees it: `synscope scan -sS -T4
//! -Pn -n --reason -oX scan.xml HOST` works (the options that only say
//! what synscope does anyway are taken and noted; `-oX FILE` / `-oN FILE`
//! become `-o nmap-xml` / `-o table` with `--output FILE`), and the ones
//! synscope has no equivalent for get a one-line answer with its own
//! spelling instead of clap's "unexpected argument".

use std::ffi::OsString;

/// The command line with nmap's habits for `scan` translated; the notes to
/// print (an option taken without effect); or the one-line answer for one
/// that cannot be taken.
pub fn translate(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<String>), String> {
    let is_scan = args.get(1).and_then(|a| a.to_str()) == Some("scan");
    if !is_scan {
        return Ok((args, Vec::new()));
    }
    let mut out = Vec::with_capacity(args.len());
    let mut notes = Vec::new();
    let mut it = args.into_iter();
    out.extend(it.by_ref().take(2));
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else {
            out.push(a);
            continue;
        };
        match s {
            // After "--", every argument is a target.
            "--" => {
                out.push(a);
                out.extend(it.by_ref());
                break;
            }
            "-sS" => notes.push("-sS: a SYN scan is what synscope does".to_string()),
            "-Pn" => {
                notes.push("-Pn: synscope never pings first; every target is probed".to_string())
            }
            "-n" => notes.push(
                "-n: synscope resolves only the names given as targets, never addresses"
                    .to_string(),
            ),
            "--reason" => notes.push("--reason: every verdict has its reason".to_string()),
            t if t.len() == 3
                && t.starts_with("-T")
                && t[2..].chars().all(|c| c.is_ascii_digit()) =>
            {
                notes.push(format!(
                    "{t}: synscope's pacing adapts to the answers by itself (--rate PPS caps it)"
                ));
            }
            "-oX" | "-oN" => {
                let Some(file) = it.next() else {
                    return Err(format!(
                        "{s} needs a file name (synscope: -o {} --output FILE)",
                        format_of(s)
                    ));
                };
                if file.to_str() == Some("-") {
                    out.extend(["-o".into(), format_of(s).into()]);
                } else {
                    out.extend(["-o".into(), format_of(s).into(), "--output".into(), file]);
                }
            }
            "-iL" => out.push("--input-list".into()),
            "-oG" => {
                return Err(
                    "-oG (grepable) is nmap's; synscope writes one line per port with -o csv (or -o jsonl)".into(),
                );
            }
            "-oA" => {
                return Err(
                    "-oA writes three formats at once in nmap; synscope writes one per run: -o nmap-xml --output BASE.xml (or -o json, -o csv)".into(),
                );
            }
            "-e" | "-S" => {
                return Err(format!(
                    "{s} is nmap's; synscope sends each probe from the interface and source address of the route to its target (`ip route get TARGET` shows them): change the route, or scan from a network namespace"
                ));
            }
            _ => out.push(a),
        }
    }
    Ok((out, notes))
}

fn format_of(flag: &str) -> &'static str {
    if flag == "-oX" { "nmap-xml" } else { "table" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &str) -> Result<(Vec<String>, usize), String> {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        translate(args).map(|(a, n)| {
            (
                a.into_iter().map(|s| s.into_string().unwrap()).collect(),
                n.len(),
            )
        })
    }

    #[test]
    fn nmap_habits_are_taken_or_answered() {
        assert_eq!(
            t("synscope scan -sS -T4 -Pn -n --reason -oX out.xml -p 22 host").unwrap(),
            (
                "synscope scan -o nmap-xml --output out.xml -p 22 host"
                    .split(' ')
                    .map(String::from)
                    .collect(),
                5
            )
        );
        assert_eq!(
            t("synscope scan -oN - -p 22 host").unwrap().0.join(" "),
            "synscope scan -o table -p 22 host"
        );
        assert_eq!(
            t("synscope scan -iL hosts.txt -p 22").unwrap().0.join(" "),
            "synscope scan --input-list hosts.txt -p 22"
        );
        for bad in [
            "synscope scan -oG - host",
            "synscope scan -oA base host",
            "synscope scan -e eth0 host",
            "synscope scan -S 192.0.2.1 host",
            "synscope scan -p 22 host -oX",
        ] {
            let e = t(bad).unwrap_err();
            assert!(!e.contains('\n') && e.contains("synscope"), "{bad}: {e}");
        }
        // Other commands, and anything after "--", are left alone.
        assert_eq!(
            t("synscope analyze -n x.pcap").unwrap().0.join(" "),
            "synscope analyze -n x.pcap"
        );
        assert_eq!(
            t("synscope scan -p 22 -- -n").unwrap().0.join(" "),
            "synscope scan -p 22 -- -n"
        );
    }
}
