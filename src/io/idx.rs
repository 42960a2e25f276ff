//! IDX files (MNIST, Fashion-MNIST): to be written.
