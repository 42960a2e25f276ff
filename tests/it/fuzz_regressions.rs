//! Fuzzing regressions: every input in `tests/fixtures/fuzz/<target>/` (crashes found by the fuzz
//! targets in `fuzz/`, kept after the fix) and every seed of `fuzz/corpus/<target>/` goes through
//! the same checks as the fuzz target of its format, and must be answered without a panic.
//! See docs/reliability.md.
#![cfg(feature = "images")]

#[allow(dead_code)]
mod checks {
    include!("../../fuzz/src/checks.rs");
}

use std::path::Path;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = rd
        .filter_map(|e| {
            let p = e.ok()?.path();
            Some((p.display().to_string(), std::fs::read(&p).ok()?))
        })
        .collect();
    v.sort();
    v
}

fn run(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        root.join("tests/fixtures/fuzz").join(target),
        root.join("fuzz/corpus").join(target),
    ] {
        for (name, data) in inputs(&dir) {
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {name} panics");
            n += 1;
        }
    }
    assert!(n > 0, "{target}: no inputs");
}

#[test]
fn onnx() {
    run("onnx", checks::onnx);
}

#[test]
fn safetensors() {
    run("safetensors", checks::safetensors);
}

#[test]
fn npy() {
    run("npy", checks::npy);
}

#[test]
fn idx() {
    run("idx", checks::idx);
}

#[test]
fn image() {
    run("image", checks::image);
}
