//! Reading and writing models, tensors and data sets.
