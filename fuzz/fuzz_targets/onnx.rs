//! Fuzz target: the onnx loader (see `klrp_fuzz::onnx`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::onnx(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("onnx", klrp_fuzz::onnx);
}
