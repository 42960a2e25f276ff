//! klrp's integration tests, in one test binary (`cargo test --test it`).
//!
//! Each module is one topic and was one binary before; one binary is compiled and linked once,
//! which is most of the time `cargo test` took (see docs/architecture.md, "Tests"). Run one
//! topic with a filter on its module path, e.g. `cargo test --all-features --test it -- kernels::`.

mod cli;
mod custom_layer;
mod determinism;
mod errors;
mod fuzz_regressions;
mod graph;
mod grouped_conv;
mod hand_computed;
mod idx;
mod imagenet;
mod imagenet_example;
mod images;
mod invariants;
mod kernels;
mod layering;
mod mnist_example;
mod models;
mod near_kinks;
mod network_figure;
mod onnx_graph;
mod onnx_import;
mod paths;
mod pool_reduce_norm;
mod reliability;
mod routing;
mod semiring_laws;
mod support;
mod torchvision;
mod zennit_graph;
mod zennit_reference;

// The MNIST example's own modules (used by `mnist_example`), by path at the crate root, where
// they refer to each other as `crate::rng` and `crate::train`; only part of them is used here.
#[cfg(feature = "viz")]
#[allow(dead_code)]
#[path = "../../examples/mnist/experiments.rs"]
mod experiments;
#[cfg(feature = "viz")]
#[allow(dead_code)]
#[path = "../../examples/mnist/network_view.rs"]
mod network_view;
#[cfg(feature = "viz")]
#[allow(dead_code)]
#[path = "../../examples/mnist/paths_view.rs"]
mod paths_view;
#[cfg(feature = "viz")]
#[allow(dead_code)]
#[path = "../../examples/mnist/rng.rs"]
mod rng;
#[cfg(feature = "viz")]
#[allow(dead_code)]
#[path = "../../examples/mnist/train.rs"]
mod train;

// The ImageNet example's module (used by `imagenet_example`), by path.
#[cfg(all(feature = "viz", feature = "images"))]
#[allow(dead_code)]
#[path = "../../examples/imagenet/lite0.rs"]
mod lite0;
