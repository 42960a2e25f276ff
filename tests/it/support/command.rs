//! Running the `klrp` binary from a test (feature `cli`).
#![cfg(feature = "cli")]

use std::process::{Command, Output};

/// `klrp ARGS…`, its exit status, stdout and stderr.
pub fn klrp<S: AsRef<str>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klrp"))
        .args(args.iter().map(AsRef::as_ref))
        .output()
        .expect("run klrp")
}

/// `klrp ARGS…`, which must succeed (the failure message has the command line and stderr).
pub fn klrp_ok<S: AsRef<str>>(args: &[S]) -> Output {
    let o = klrp(args);
    let line: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    assert!(
        o.status.success(),
        "klrp {} failed: {}",
        line.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}
