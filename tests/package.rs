//! The Debian package (`.ci/deb.sh`), built from the test binary, installed
//! with dpkg, used, and removed. Root only: skipped with a message
//! otherwise, failed when CI is set.

mod common;

use common::*;
use std::process::Command;

/// Removes the package however the test ends.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["-r", "synscope"]).output();
    }
}

#[test]
fn the_deb_installs_and_its_binary_man_pages_and_completions_work() {
    if !is_root() {
        skip_or_fail("installing a package needs root (run as root, as CI does)");
        return;
    }
    if !have("dpkg-deb") {
        skip_or_fail("dpkg-deb is not installed");
        return;
    }
    let d = scratch("deb");
    let o = Command::new("bash")
        .arg(root().join(".ci/deb.sh"))
        .arg(env!("CARGO_BIN_EXE_synscope"))
        .arg(&d)
        .output()
        .expect("bash .ci/deb.sh");
    assert!(o.status.success(), "deb.sh: {}", stderr(&o));
    let deb = stdout(&o).trim().to_string();
    let info = Command::new("dpkg-deb")
        .args(["-f", &deb])
        .output()
        .unwrap();
    let control = stdout(&info);
    assert!(
        control.contains("Package: synscope")
            && control.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{control}"
    );
    let o = Command::new("dpkg").args(["-i", &deb]).output().unwrap();
    let _installed = Installed;
    assert!(o.status.success(), "dpkg -i: {}", stderr(&o));
    // The installed binary.
    let o = Command::new("/usr/bin/synscope")
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        stdout(&o).trim(),
        format!("synscope {}", env!("CARGO_PKG_VERSION"))
    );
    let o = Command::new("/usr/bin/synscope")
        .args(["analyze", "-o", "json"])
        .arg(root().join("captures/wrong-port.pcap"))
        .output()
        .unwrap();
    assert!(stdout(&o).contains("\"port\":8081"), "{}", stderr(&o));
    // Man pages: synscope(1) and one per command, where man looks.
    for page in [
        "synscope",
        "synscope-analyze",
        "synscope-scan",
        "synscope-diagnose",
        "synscope-watch",
    ] {
        let path = format!("/usr/share/man/man1/{page}.1.gz");
        let o = Command::new("zcat").arg(&path).output().unwrap();
        assert!(
            stdout(&o).contains(&format!(".TH {page} 1")),
            "{path}: {}",
            stderr(&o)
        );
    }
    // Completions: bash loads them and knows the commands.
    let o = Command::new("bash")
        .args([
            "-c",
            "source /usr/share/bash-completion/completions/synscope && complete -p synscope",
        ])
        .output()
        .unwrap();
    assert!(stdout(&o).contains("synscope"), "{}", stderr(&o));
    for f in [
        "/usr/share/zsh/vendor-completions/_synscope",
        "/usr/share/fish/vendor_completions.d/synscope.fish",
        "/usr/share/doc/synscope/copyright",
        "/usr/share/doc/synscope/README.Debian",
    ] {
        assert!(std::path::Path::new(f).is_file(), "{f}");
    }
    let readme = std::fs::read_to_string("/usr/share/doc/synscope/README.Debian").unwrap();
    assert!(readme.contains("setcap cap_net_raw,cap_net_admin+eip /usr/bin/synscope"));
    drop(_installed);
    assert!(
        !std::path::Path::new("/usr/bin/synscope").exists(),
        "removed"
    );
    let _ = std::fs::remove_dir_all(&d);
}
