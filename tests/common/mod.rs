//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use synscope::fixture::{self, Seg};
use synscope::source::PcapWriter;
use synscope::wire::{LinkType, flags};

/// The binary, without a sudo caller in its environment (a scan would drop
/// root to it); the test of that sets it on purpose.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synscope"));
    c.env_remove("SUDO_UID").env_remove("SUDO_GID");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run synscope")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The project root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synscope-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Writes a small pcap: a SYN answered by SYN-ACK (port 80), one answered
/// by RST (port 81), one left silent (port 9000).
pub fn write_small_scan(path: &Path) {
    let t0: u64 = 1_700_000_000_000_000_000;
    let ms = 1_000_000;
    let mut w = PcapWriter::create(path, LinkType::ETHERNET).expect("create pcap");
    let mut put = |ts: u64, s: &Seg| {
        let f = fixture::ethernet(&fixture::tcp_ip(s));
        w.write(ts, f.len() as u32, &f);
    };
    let open = Seg::syn("198.51.100.2", 40000, "203.0.113.2", 80, 100);
    let closed = Seg::syn("198.51.100.2", 40001, "203.0.113.2", 81, 200);
    let silent = Seg::syn("198.51.100.2", 40002, "203.0.113.2", 9000, 300);
    put(t0, &open);
    put(t0 + ms, &closed);
    put(t0 + 2 * ms, &silent);
    put(t0 + 3 * ms, &open.reply(flags::SYN | flags::ACK, 63));
    put(t0 + 4 * ms, &closed.reply(flags::RST | flags::ACK, 63));
    w.finish().expect("finish pcap");
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root (the lab needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A test that cannot run here: skipped with a visible message, except in
/// CI (CI=true), where a skip would hide a missing check, so it fails.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("cannot run in CI: {why}");
    }
    eprintln!("SKIPPED (not counted as passing): {why}");
}

/// Tests that load the machine (an unthrottled scan) run alone: they take
/// this lock for writing, every other scanning test for reading.
pub static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn light() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

pub fn heavy() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// The head of a command line that runs the rest as nobody, with no
/// capabilities (setpriv, util-linux).
pub const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// A copy of the binary in a fresh directory, both mode 755, so another
/// user (nobody) can run it, or file capabilities can be set on it.
/// Returns (directory, binary).
pub fn public_copy(name: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch(name);
    let bin = dir.join("synscope");
    std::fs::copy(env!("CARGO_BIN_EXE_synscope"), &bin).expect("copy the binary");
    for p in [&dir, &bin] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    }
    (dir, bin)
}

/// A run that completed: exit 0 (every verdict open) or 1 (some port not
/// open), never an error code.
pub fn assert_ran(o: &Output, what: &str) {
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{what}: exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
}

/// The exit code follows the README's scheme for the verdicts of a JSON
/// report: 0 when there are some and all are open, 1 otherwise.
pub fn assert_exit_follows(o: &Output, j: &serde_json::Value, what: &str) {
    assert_ran(o, what);
    let r = j["results"].as_array().expect("a results array");
    let all_open = !r.is_empty() && r.iter().all(|v| v["state"] == "open");
    assert_eq!(
        o.status.code(),
        Some(if all_open { 0 } else { 1 }),
        "{what}: {} results, all open: {all_open}",
        r.len()
    );
}

fn schema_validator(def: Option<&str>) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/report.schema.json"))
        .expect("docs/report.schema.json");
    let mut schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    if let Some(def) = def {
        // The same document, entered at one of its definitions.
        schema["$ref"] = serde_json::Value::from(format!("#/$defs/{def}"));
        if let Some(o) = schema.as_object_mut() {
            for k in ["type", "required", "properties", "additionalProperties"] {
                o.remove(k);
            }
        }
    }
    jsonschema::draft202012::new(&schema).expect("a valid JSON Schema")
}

/// docs/report.schema.json's errors for a JSON report (empty: valid).
pub fn report_errors(j: &serde_json::Value) -> Vec<String> {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| schema_validator(None))
        .iter_errors(j)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The same for one verdict (a JSON Lines line).
pub fn verdict_errors(j: &serde_json::Value) -> Vec<String> {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| schema_validator(Some("verdict")))
        .iter_errors(j)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn assert_valid_report(j: &serde_json::Value, what: &str) {
    let errors = report_errors(j);
    assert!(
        errors.is_empty(),
        "{what}: not as docs/report.schema.json says: {errors:#?}"
    );
}

/// docs/report.schema.json's `$defs/diagnosis` for `diagnose -o json`.
pub fn assert_valid_diagnosis(j: &serde_json::Value, what: &str) {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let errors: Vec<String> = V
        .get_or_init(|| schema_validator(Some("diagnosis")))
        .iter_errors(j)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: not as docs/report.schema.json says: {errors:#?}"
    );
}

/// `synscope analyze --format json ARGS...`, which must succeed.
pub fn analyze_ok(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["analyze", "--format", "json"];
    full.extend_from_slice(args);
    let o = run(&full);
    assert!(o.status.success(), "analyze {args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("a JSON report")
}

/// Renders `html` with headless Chromium inside network namespace `ns` (a
/// lab's client: no route out, its resolver the lab's own, so it cannot
/// reach anything): a screenshot (PNG bytes, also at HTML.png) and the DOM
/// it parsed.
pub fn chromium_render(ns: &str, html: &Path, dir: &Path) -> (Vec<u8>, String) {
    let profile = dir.join("chromium-profile");
    let png = html.with_extension("png");
    let chromium = |extra: &[&str]| {
        let prof = format!("--user-data-dir={}", profile.display());
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "timeout",
                "60",
                "chromium",
                "--headless",
            ])
            .args([
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
            ])
            .args(["--disable-sync", &prof])
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap()
    };
    let shot = format!("--screenshot={}", png.display());
    let o = chromium(&["--window-size=1200,1400", &shot]);
    let bytes = std::fs::read(&png).unwrap_or_else(|_| panic!("no screenshot: {}", stderr(&o)));
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot of {} bytes: blank page?",
        bytes.len()
    );
    let o = chromium(&["--dump-dom"]);
    (bytes, stdout(&o))
}

/// The boxes of the one finding picture in `dom` (Chromium's DOM of a
/// diagnosis page), as (class, text) pairs.
pub fn picture_boxes(dom: &str) -> Vec<(String, String)> {
    let pics: Vec<&str> = dom.split("<div class=\"path picture\">").skip(1).collect();
    assert!(!pics.is_empty(), "no picture in:\n{dom}");
    let pic = pics[0].split("</div>").next().unwrap_or("");
    pic.split("<span class=\"")
        .skip(1)
        .filter_map(|b| {
            let (class, rest) = b.split_once("\">")?;
            let text = rest.split("</span>").next()?.replace("<br>", " ");
            (class != "arrow").then(|| (class.to_string(), text))
        })
        .collect()
}
