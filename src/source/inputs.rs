//! The command line's capture arguments as files: a file is itself, a
//! directory is every capture file in it (not its subdirectories), and a
//! quoted glob (`'caps/*.pcap'`, for lists too long for the shell) is the
//! files it matches.

use crate::model::InputSummary;
use std::path::{Path, PathBuf};

/// What the arguments name.
#[derive(Debug, Default, PartialEq)]
pub struct Inputs {
    /// In the order given; a directory's files sorted by name.
    pub files: Vec<PathBuf>,
    /// For each file, the index of the argument that named it.
    pub arg_of: Vec<usize>,
    /// (argument index, argument, why it gave no file): input errors.
    pub errors: Vec<(usize, String, String)>,
    /// (directory, files in it that are not captures): left out, said once.
    pub left_out: Vec<(String, Vec<String>)>,
}

impl Inputs {
    /// The summaries of [`Inputs::files`] (one a file, in that order) with
    /// one more for each argument that named no file (its error), each in
    /// its argument's place: the inputs (error lines, JSON `inputs`) follow
    /// the command line's order.
    pub fn in_argument_order(&self, summaries: Vec<InputSummary>) -> Vec<InputSummary> {
        let mut entries: Vec<(usize, InputSummary)> =
            self.arg_of.iter().copied().zip(summaries).collect();
        entries.extend(self.errors.iter().map(|(n, arg, why)| {
            let i = InputSummary {
                file: arg.clone(),
                error: Some(why.clone()),
                ..Default::default()
            };
            (*n, i)
        }));
        // Stable: a directory's files keep their order.
        entries.sort_by_key(|(n, _)| *n);
        entries.into_iter().map(|(_, i)| i).collect()
    }
}

/// pcap (both byte orders, micro- and nanosecond) and pcapng magic numbers.
const MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// Whether the file starts like a pcap or pcapng capture.
pub fn looks_like_capture(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| MAGICS.contains(&magic))
}

pub fn expand(args: &[PathBuf]) -> Inputs {
    let mut out = Inputs::default();
    for (n, arg) in args.iter().enumerate() {
        let before = out.files.len();
        let shown = arg.display().to_string();
        if arg.is_dir() {
            match directory(arg) {
                Ok((files, others)) => {
                    if files.is_empty() {
                        out.errors.push((
                            n,
                            shown,
                            "directory holds no pcap/pcapng file".to_string(),
                        ));
                    } else {
                        out.files.extend(files);
                    }
                    if !others.is_empty() {
                        out.left_out.push((arg.display().to_string(), others));
                    }
                }
                Err(e) => out
                    .errors
                    .push((n, shown, format!("cannot list the directory: {e}"))),
            }
        } else if !arg.exists() && is_glob(&shown) {
            match glob::glob(&shown) {
                Ok(paths) => {
                    let mut files: Vec<PathBuf> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    files.sort();
                    if files.is_empty() {
                        out.errors.push((n, shown, "no file matches".to_string()));
                    }
                    out.files.extend(files);
                }
                Err(e) => out.errors.push((n, shown, format!("bad pattern: {e}"))),
            }
        } else {
            // Missing, unreadable or not a capture: the reader says which.
            out.files.push(arg.clone());
        }
        out.arg_of.resize(out.files.len().max(before), n);
    }
    out
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The captures in a directory (sorted), and the names of its other files.
fn directory(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<String>)> {
    let mut files = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        if looks_like_capture(&path) {
            files.push(path);
        } else {
            others.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    files.sort();
    others.sort();
    Ok((files, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("synscope-inputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_directory_is_its_captures_in_name_order() {
        let d = scratch("dir");
        std::fs::write(d.join("b.pcap"), [0xd4, 0xc3, 0xb2, 0xa1, 0]).unwrap();
        std::fs::write(d.join("a"), [0x0a, 0x0d, 0x0d, 0x0a]).unwrap();
        std::fs::write(d.join("notes.txt"), b"hello").unwrap();
        std::fs::write(d.join("short"), [0xd4]).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/c.pcap"), [0xd4, 0xc3, 0xb2, 0xa1]).unwrap();
        let i = expand(std::slice::from_ref(&d));
        assert_eq!(i.files, vec![d.join("a"), d.join("b.pcap")]);
        assert_eq!(i.arg_of, vec![0, 0]);
        assert!(i.errors.is_empty());
        assert_eq!(
            i.left_out,
            vec![(
                d.display().to_string(),
                vec!["notes.txt".to_string(), "short".to_string()]
            )]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn globs_empty_directories_and_plain_files() {
        let d = scratch("glob");
        for n in ["x1.pcap", "x2.pcap", "y.pcap"] {
            std::fs::write(d.join(n), [0xa1, 0xb2, 0xc3, 0xd4]).unwrap();
        }
        std::fs::create_dir(d.join("empty")).unwrap();
        let pat = d.join("x*.pcap");
        let none = d.join("z*.pcap");
        let plain = d.join("missing.pcap");
        let i = expand(&[pat, d.join("empty"), none.clone(), plain.clone()]);
        assert_eq!(
            i.files,
            vec![d.join("x1.pcap"), d.join("x2.pcap"), plain.clone()]
        );
        assert_eq!(i.arg_of, vec![0, 0, 3]);
        assert_eq!(
            i.errors,
            vec![
                (
                    1,
                    d.join("empty").display().to_string(),
                    "directory holds no pcap/pcapng file".to_string()
                ),
                (2, none.display().to_string(), "no file matches".to_string()),
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn arguments_that_named_no_file_keep_their_place() {
        let i = Inputs {
            files: ["a1", "a2", "c"].iter().map(PathBuf::from).collect(),
            arg_of: vec![0, 0, 2],
            errors: vec![
                (3, "d*".to_string(), "no file matches".to_string()),
                (
                    1,
                    "empty/".to_string(),
                    "directory holds no pcap/pcapng file".to_string(),
                ),
            ],
            left_out: Vec::new(),
        };
        let read = |f: &str| InputSummary {
            file: f.to_string(),
            packets_read: 1,
            ..Default::default()
        };
        let merged = i.in_argument_order(vec![read("a1"), read("a2"), read("c")]);
        let files: Vec<&str> = merged.iter().map(|s| s.file.as_str()).collect();
        assert_eq!(files, ["a1", "a2", "empty/", "c", "d*"]);
        let errors: Vec<Option<&str>> = merged.iter().map(|s| s.error.as_deref()).collect();
        assert_eq!(
            errors,
            [
                None,
                None,
                Some("directory holds no pcap/pcapng file"),
                None,
                Some("no file matches")
            ]
        );
        assert_eq!(merged[3].packets_read, 1, "a file's summary is kept whole");
        assert_eq!(merged[2].packets_read, 0);
    }
}
