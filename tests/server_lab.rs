//! diagnose past the SYN (root, in CI): in the server lab
//! (tests/lab/server.sh), listeners that accept then reset, accept then
//! close, speak first, wait silently, or never accept (a full queue), and a
//! host behind a SYN proxy where only 22 and 80 are served. Each is named
//! with what an application sees, IPv4 and IPv6, raw and unprivileged.
//! Every packet stays inside the lab's namespaces.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

struct ServerLab {
    prefix: String,
}

impl ServerLab {
    fn up() -> Option<ServerLab> {
        if !is_root() {
            skip_or_fail("the server lab needs root (run as root, as CI does)");
            return None;
        }
        let prefix = format!(
            "sv{}{}",
            std::process::id() % 10000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let o = Command::new("bash")
            .arg(root().join("tests/lab/server.sh"))
            .args(["up", &prefix])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "server.sh up: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(ServerLab { prefix })
    }

    fn diagnose(&self, target: &str, extra: &[&str]) -> Value {
        self.diagnose_code(target, extra).0
    }

    /// The diagnosis, and diagnose's exit code.
    fn diagnose_code(&self, target: &str, extra: &[&str]) -> (Value, Option<i32>) {
        let o = Command::new("ip")
            .args(["netns", "exec", &format!("{}-sc", self.prefix)])
            .arg(env!("CARGO_BIN_EXE_synscope"))
            .args(["diagnose", target, "--format", "json"])
            .args(extra)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{target}: {e}: {}", stderr(&o)));
        assert_valid_diagnosis(&j, target);
        (j, o.status.code())
    }
}

impl Drop for ServerLab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/lab/server.sh"))
            .args(["down", &self.prefix])
            .status();
    }
}

fn first(d: &Value) -> &Value {
    &d["addresses"][0]["findings"][0]
}

fn text(f: &Value) -> String {
    format!(
        "{} | {} | {}",
        f["summary"].as_str().unwrap_or(""),
        f["details"]
            .as_array()
            .map(|d| d
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" | "))
            .unwrap_or_default(),
        f["application_error"].as_str().unwrap_or("")
    )
}

#[test]
fn what_a_server_does_after_the_handshake_is_named() {
    let _g = heavy();
    let Some(lab) = ServerLab::up() else {
        return;
    };
    // (port, kind of the first finding, words it must hold)
    let cases: &[(u16, &str, &[&str])] = &[
        (
            7001,
            "accepts-then-resets",
            &[
                "Accepted, then reset",
                "ECONNRESET \"Connection reset by peer\"",
                "not \"refused\"",
            ],
        ),
        (
            7002,
            "accepts-then-closes",
            &[
                "Accepted, then closed",
                "without a byte",
                "read() returns 0",
                "Empty reply",
            ],
        ),
        (
            7003,
            "open",
            &[
                "The server speaks first: \"SSH-2.0-synscope-lab\\r\\n\"",
                "22 bytes read",
            ],
        ),
        (
            7004,
            "open",
            &["waits for the client to speak first", "Not a failure"],
        ),
        (
            7005,
            "dropped-host-up",
            &[
                "Located at the last hop",
                "accept queue is full",
                "ListenOverflows",
                "ETIMEDOUT",
            ],
        ),
    ];
    for host in ["198.18.2.2", "[2001:db8:7::2]"] {
        for &(port, kind, words) in cases {
            let target = format!("{host}:{port}");
            for mode in [&[][..], &["--unprivileged"][..]] {
                let (d, code) = lab.diagnose_code(&target, mode);
                // Exit 0 only where a connection works: 7003 and 7004.
                let works = matches!(port, 7003 | 7004);
                assert_eq!(code, Some(if works { 0 } else { 1 }), "{target} {mode:?}");
                let f = first(&d);
                let all = text(f);
                // Unprivileged, a drop is not traced: no location, no
                // backlog note (it says what it cannot see instead).
                if port == 7005 && !mode.is_empty() {
                    assert_eq!(f["kind"], "dropped-host-up", "{target} {mode:?}: {all}");
                    assert!(all.contains("connect() probes"), "{target} {mode:?}: {all}");
                    assert!(
                        all.contains("accept queue is full"),
                        "{target} {mode:?}: {all}"
                    );
                    continue;
                }
                // Unprivileged, each says what that mode sees of it.
                if !mode.is_empty() && port != 7001 {
                    assert!(all.contains("only the TTLs"), "{target}: {all}");
                }
                assert_eq!(f["kind"], kind, "{target} {mode:?}: {all}");
                for w in words {
                    assert!(all.contains(w), "{target} {mode:?}: no {w:?} in {all}");
                }
                if port == 7001 && !mode.is_empty() {
                    assert!(all.contains("cannot be told"), "{target}: {all}");
                }
                let after = d["addresses"][0]["after_handshake"].as_array();
                if port != 7005 {
                    let after = after.unwrap_or_else(|| panic!("{target}: no after_handshake"));
                    assert_eq!(after[0]["port"], port, "{target}: the asked port first");
                    // A reset right after the handshake may reach the
                    // socket before connect() returns: then connect()
                    // itself fails with ECONNRESET (the handshake was
                    // answered all the same).
                    let reset_in_connect = port == 7001
                        && after[0]["connect_error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("ECONNRESET"));
                    assert!(
                        after[0]["connected"] == true || reset_in_connect,
                        "{target}: {}",
                        after[0]
                    );
                }
            }
        }
    }
    // A firewall's DROP at the host: located there too, so the same note
    // names both (nothing outside the host tells them apart).
    let d = lab.diagnose("198.18.2.2:9000", &[]);
    assert!(text(first(&d)).contains("accept queue is full"));
}

#[test]
fn a_syn_proxy_answering_for_the_host_is_named() {
    let _g = heavy();
    let Some(lab) = ServerLab::up() else {
        return;
    };
    for host in ["198.18.3.2", "[2001:db8:8::2]"] {
        for mode in [&[][..], &["--unprivileged"][..]] {
            // A port nothing serves: the finding is the proxy.
            let d = lab.diagnose(&format!("{host}:81"), mode);
            let f = first(&d);
            let all = text(f);
            assert_eq!(f["kind"], "answered-on-behalf", "{host} {mode:?}: {all}");
            assert!(
                all.contains("Really served: 22, 80; port 81 is not"),
                "{all}"
            );
            assert!(all.contains("ECONNRESET"), "{all}");
            // A served port: open, and the proxy said beside it.
            let d = lab.diagnose(&format!("{host}:22"), mode);
            let fs = d["addresses"][0]["findings"].as_array().unwrap();
            assert_eq!(fs[0]["kind"], "open", "{host} {mode:?}: {fs:?}");
            assert!(
                fs.iter().any(|f| f["kind"] == "answered-on-behalf"
                    && text(f).contains("Really served: 22, 80 (port 22 among them)")),
                "{host} {mode:?}: {fs:?}"
            );
        }
    }
}

/// The post-handshake outcomes have their pictures in the HTML report: the
/// handshake, then what followed, rendered by Chromium inside the lab.
#[test]
fn html_pictures_show_what_followed_the_handshake() {
    let _g = heavy();
    let Some(lab) = ServerLab::up() else {
        return;
    };
    if !have("chromium") {
        skip_or_fail("needs chromium, installed by .ci/run");
        return;
    }
    let dir = scratch("server-html");
    for (port, want) in [
        (7001u16, ("hop stop", "RST")),
        (7002, ("hop stop", "FIN, no data")),
        (7003, ("hop host", "data: SSH-2.0-synscope-lab\\r\\n")),
        (7004, ("hop", "waits for the client")),
    ] {
        let html = dir.join(format!("{port}.html"));
        let o = Command::new("ip")
            .args(["netns", "exec", &format!("{}-sc", lab.prefix)])
            .arg(env!("CARGO_BIN_EXE_synscope"))
            .args(["diagnose", &format!("198.18.2.2:{port}"), "--report"])
            .arg(&html)
            .output()
            .unwrap();
        assert!(html.exists(), "{port}: {}", stderr(&o));
        let (_, dom) = chromium_render(&format!("{}-sc", lab.prefix), &html, &dir);
        let boxes = picture_boxes(&dom);
        let handshake = boxes
            .iter()
            .position(|(c, t)| c == "hop" && t.starts_with("handshake"))
            .unwrap_or_else(|| panic!("{port}: no handshake box: {boxes:?}"));
        let after = &boxes[handshake + 1];
        assert_eq!(after.0, want.0, "{port}: {boxes:?}");
        assert!(after.1.contains(want.1), "{port}: {boxes:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
