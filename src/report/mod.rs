//! report: verdicts for people (tables) and for programs (JSON).

mod csv;
mod diagnosis;
mod json;
mod nmapxml;
mod scan_note;
pub mod services;
mod table;

pub use crate::model::thousands;
pub use csv::{check_fields, write_csv};
pub use diagnosis::{
    picture, picture_text, render_diagnosis_html, render_diagnosis_markdown, render_findings,
    render_findings_html, render_watch_html, write_diagnosis_json,
};
pub use nmapxml::write_nmap_xml;
pub use scan_note::scan_note;

/// JSON Lines: one verdict per line (what DuckDB's read_json_auto and Spark
/// read as they are).
pub fn write_jsonl<W: std::io::Write>(
    results: &[crate::model::Verdict],
    mut w: W,
) -> std::io::Result<()> {
    for v in results {
        serde_json::to_writer(&mut w, v).map_err(std::io::Error::from)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
pub use json::{write_json, write_watch_json};
pub use table::{TableOptions, render_table};

/// A progress bar of `len` steps drawn with indicatif's `template` (on
/// stderr, which indicatif draws to only when it is a terminal).
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            // {rate}: per second, in whole numbers ("1,234/s").
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}/s", thousands(s.per_sec().max(0.0).round() as u64));
                },
            ),
    );
    bar
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, renamed
/// over it when complete, so an existing file is never left half-written.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        // A new file only (O_EXCL, O_NOFOLLOW): nothing planted at the
        // temporary name is followed or truncated.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether [`write_atomic`] could write `path` now: its temporary file is
/// created (as a new file, never through a symlink) and removed again. A
/// long scan checks this before it starts, so its result is not lost
/// after it ran.
pub fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        ));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(".{name}.{}.check", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    std::fs::remove_file(&tmp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn atomic_writes_never_follow_symlinks() {
        let d = std::env::temp_dir().join(format!("synscope-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let victim = d.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // The destination is a symlink: it is replaced, not followed.
        let out = d.join("report.md");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        super::write_atomic(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        assert!(
            !std::fs::symlink_metadata(&out)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A symlink planted at the temporary name: the write fails, and
        // neither the victim nor the existing file is touched.
        let tmp = d.join(format!(".report.md.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        assert!(super::write_atomic(&out, b"evil").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(65520), "65,520");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
