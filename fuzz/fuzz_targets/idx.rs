//! Fuzz target: the idx loader (see `klrp_fuzz::idx`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::idx(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("idx", klrp_fuzz::idx);
}
