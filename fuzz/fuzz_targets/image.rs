//! Fuzz target: the image loader (see `klrp_fuzz::image` and `klrp_fuzz::image_bounded`).
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| klrp_fuzz::image_bounded(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    klrp_fuzz::plain::main("image", klrp_fuzz::image);
}
