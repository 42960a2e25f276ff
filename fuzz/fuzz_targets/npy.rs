//! Fuzz target: the npy loader (see `klrp_fuzz::npy`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::npy(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("npy", klrp_fuzz::npy);
}
