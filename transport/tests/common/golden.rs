//! Reading the golden capture files (`tests/golden/*.txt`, see its README).

use std::path::{Path, PathBuf};

/// One captured frame.
pub struct Captured {
    /// Line number in its file, for messages.
    pub line: usize,
    /// true: client to server.
    pub to_server: bool,
    /// The whole frame, length prefix included.
    pub frame: Vec<u8>,
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

pub fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {:?}", golden_dir());
    files
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn parse(path: &Path) -> Vec<Captured> {
    let text = std::fs::read_to_string(path).expect("readable golden file");
    let mut frames = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (dir, hex) = line.split_once(' ').expect("'<dir> <hex>'");
        let to_server = match dir {
            ">" => true,
            "<" => false,
            other => panic!("{}:{}: bad direction {other:?}", path.display(), i + 1),
        };
        frames.push(Captured {
            line: i + 1,
            to_server,
            frame: unhex(hex.trim()),
        });
    }
    frames
}

/// Every captured frame body (length prefix stripped), both directions, all files.
pub fn all_bodies() -> Vec<Vec<u8>> {
    golden_files()
        .iter()
        .flat_map(|p| parse(p))
        .map(|c| c.frame[4..].to_vec())
        .collect()
}
