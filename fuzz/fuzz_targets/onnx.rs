//! Fuzz target: the onnx loader (see `klrp_fuzz::onnx` and `klrp_fuzz::onnx_single_threaded`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::onnx_single_threaded(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("onnx", klrp_fuzz::onnx);
}
