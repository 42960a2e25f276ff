//! Fuzz target: the safetensors loader (see `klrp_fuzz::safetensors`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::safetensors(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("safetensors", klrp_fuzz::safetensors);
}
