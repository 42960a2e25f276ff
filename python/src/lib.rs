//! `klrp._klrp`: the compiled half of the `klrp` Python package (PyO3).
//!
//! `explain`'s keyword arguments fill a `klrp::spec::ExplainOptions` with the command line's
//! strings, so the meanings, defaults and error messages are those of `klrp explain` /
//! `klrp predict`. The Python half
//! (`python/klrp/__init__.py`) checks dtypes, documents the API and adds the pure-Python helpers.

use klrp::io::idx::Mnist;
use klrp::io::image::{self, Normalization, Preprocess};
use klrp::io::onnx::load_onnx_file;
use klrp::spec::{ExplainOptions, ExplainSpec, RelevanceArray, Targets};
use klrp::viz::{Colormap, RgbImage, Scale};
use klrp::{Error, Network};
use ndarray::{Array3, ArrayD, Axis, Ix2, Ix3};
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray3, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList};
use serde_json::Value;
use std::collections::BTreeMap;

/// klrp's error → a Python exception carrying the message: a missing file is
/// `FileNotFoundError`, another I/O failure `OSError`, everything else (bad input) `ValueError`.
fn to_py(e: Error) -> PyErr {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(e.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A network loaded from ONNX: the network as imported (forward pass, `info`) and canonized
/// (batch norms fused, as `klrp explain` propagates it).
#[pyclass(module = "klrp._klrp", frozen)]
struct Model {
    raw: Network,
    canonized: Network,
    origin: Vec<String>,
    description: String,
    /// The ONNX `metadata_props` (`klrp.mean`, `klrp.std`, `klrp.resize`, `klrp.crop`: the
    /// preprocessing of image inputs).
    metadata: BTreeMap<String, String>,
}

/// The input as a batch: `x` itself if it has the batch axis, else `x` with one added.
fn as_batch(net: &Network, x: ArrayD<f32>) -> PyResult<(ArrayD<f32>, bool)> {
    let sample = net.input_shape();
    if x.ndim() == sample.len() + 1 {
        Ok((x, true))
    } else if x.shape() == sample {
        Ok((x.insert_axis(Axis(0)), false))
    } else {
        Err(PyValueError::new_err(format!(
            "x has shape {:?}; the model takes [N, {}] or one sample {:?}",
            x.shape(),
            sample
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            sample
        )))
    }
}

fn strip<T>(a: ArrayD<T>, had_batch: bool) -> ArrayD<T> {
    if had_batch {
        a
    } else {
        a.index_axis_move(Axis(0), 0)
    }
}

fn to_numpy(py: Python<'_>, r: RelevanceArray, had_batch: bool) -> Py<PyAny> {
    match r {
        RelevanceArray::Real(a) | RelevanceArray::Viterbi(a) => {
            strip(a, had_batch).into_pyarray(py).into_any().unbind()
        }
        RelevanceArray::Boolean(a) => strip(a, had_batch).into_pyarray(py).into_any().unbind(),
        RelevanceArray::Counting(a) => strip(a, had_batch).into_pyarray(py).into_any().unbind(),
    }
}

/// `explain`'s keyword arguments as [`ExplainOptions`], each read by its field name (serde), its
/// value spelled as on the command line ([`text`]); `None` is "not given".
fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<ExplainOptions> {
    let known = serde_json::to_value(ExplainOptions::default()).expect("plain data");
    let mut map = serde_json::Map::new();
    for (key, value) in kwargs.into_iter().flatten() {
        let key: String = key.extract()?;
        if known.get(key.as_str()).is_none() {
            return Err(PyTypeError::new_err(format!(
                "explain() got an unexpected keyword argument '{key}'"
            )));
        }
        if !value.is_none() {
            map.insert(key, text(&value)?);
        }
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| PyTypeError::new_err(format!("explain: {e}")))
}

/// A Python value as the command line spells it: a bool stays a flag; a string is itself; a
/// number is its decimal (a float Rust's shortest round-trip `{}` of the `f64`, so parsing it as
/// `f32` rounds the float once, as numpy's `float32(x)` does); a dict `{k: v}` is the list of
/// `k=v`, in its order (`theta_at={3: 0.1}` is `--theta-at 3=0.1`).
fn text(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(flag) = v.extract::<bool>() {
        return Ok(Value::Bool(flag));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let pair = |(k, v)| Ok(Value::String(format!("{}={}", word(&k)?, word(&v)?)));
        return d
            .iter()
            .map(pair)
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    word(v).map(Value::String)
}

/// A string, an integer, a float or a sequence of numbers (comma-separated) as [`text`]
/// spells it.
fn word(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = v.extract::<String>() {
        Ok(s)
    } else if v.is_instance_of::<PyInt>() {
        Ok(v.str()?.to_string())
    } else if let Ok(f) = v.extract::<f64>() {
        Ok(format!("{f}"))
    } else if let Ok(values) = v.extract::<Vec<f64>>() {
        // A sequence of numbers (one per channel: `low=[0, 0, 0]`) as `--low 0,0,0`.
        Ok(values
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join(","))
    } else {
        Err(PyTypeError::new_err(format!(
            "explain: expected a string or a number, got {}",
            v.get_type().name()?
        )))
    }
}

#[pymethods]
impl Model {
    /// Loads an ONNX file (as `klrp explain --model PATH`).
    #[staticmethod]
    fn from_onnx(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Model> {
        py.detach(|| {
            let m = load_onnx_file(&path)?;
            let origin = m
                .nodes()
                .iter()
                .map(|n| {
                    if n.name.is_empty() {
                        n.op_type.clone()
                    } else {
                        format!("{} ({})", n.name, n.op_type)
                    }
                })
                .collect();
            let description = format!(
                "{} (ONNX{}{})",
                path.display(),
                m.opset().map(|v| format!(" opset {v}")).unwrap_or_default(),
                if m.producer().is_empty() {
                    String::new()
                } else {
                    format!(", from {}", m.producer())
                }
            );
            let metadata = m.metadata().clone();
            let raw = m.into_network();
            // Network is not Clone: the canonized copy is imported again (parsing is cheap).
            let canonized = load_onnx_file(&path)?.into_network().canonize()?;
            Ok(Model {
                raw,
                canonized,
                origin,
                description,
                metadata,
            })
        })
        .map_err(to_py)
    }

    /// The model's `metadata_props` (key → value).
    fn metadata(&self) -> BTreeMap<String, String> {
        self.metadata.clone()
    }

    /// An image file (PNG/JPEG) as the network input `[C, H, W]`, preprocessed as `klrp explain`
    /// preprocesses it: the model's metadata, else the default for its input
    /// (`Preprocess::for_model`); `resize` and `normalize` ("imagenet" | "none") override it.
    #[pyo3(signature = (path, resize=None, normalize=None, max_pixels=None))]
    fn preprocess_file<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
        resize: Option<usize>,
        normalize: Option<String>,
        max_pixels: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let pre = self.preprocessing(resize, normalize.as_deref())?;
        let limit = match max_pixels {
            Some(0) => return Err(PyValueError::new_err("max_pixels: must be at least 1")),
            Some(n) => n,
            None => image::MAX_PIXELS,
        };
        let x = py
            .detach(|| {
                let img = image::read_image_file_with_max_pixels(&path, limit)?;
                image::to_tensor(&img, &pre)
            })
            .map_err(to_py)?;
        Ok(sample3(x).into_pyarray(py))
    }

    /// An RGB image `[H, W, 3]` (uint8) as the network input `[C, H, W]`, as
    /// [`Model::preprocess_file`].
    #[pyo3(signature = (rgb, resize=None, normalize=None))]
    fn preprocess_rgb<'py>(
        &self,
        py: Python<'py>,
        rgb: PyReadonlyArray3<'py, u8>,
        resize: Option<usize>,
        normalize: Option<String>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let pre = self.preprocessing(resize, normalize.as_deref())?;
        let a = rgb.as_array();
        let (height, width, c) = a.dim();
        if c != 3 || height == 0 || width == 0 {
            return Err(PyValueError::new_err(format!(
                "image: expected a uint8 [H, W, 3] array with H, W ≥ 1, got [{height}, {width}, {c}]"
            )));
        }
        let img = image::RgbImage {
            width,
            height,
            pixels: a.iter().copied().collect(),
        };
        let x = py.detach(|| image::to_tensor(&img, &pre)).map_err(to_py)?;
        Ok(sample3(x).into_pyarray(py))
    }

    /// The model's layers and shapes as a dict.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let net = &self.raw;
        let d = PyDict::new(py);
        d.set_item("model", &self.description)?;
        d.set_item("input_shape", net.input_shape().to_vec())?;
        d.set_item("output_shape", net.output_shape().to_vec())?;
        let layers = PyList::empty(py);
        for (i, layer) in net.layers().iter().enumerate() {
            let l = PyDict::new(py);
            l.set_item("index", i)?;
            l.set_item("from", self.origin.get(i).cloned().unwrap_or_default())?;
            l.set_item("layer", layer.name())?;
            l.set_item(
                "output_shape",
                net.layer_output_shape(i).unwrap_or(&[]).to_vec(),
            )?;
            l.set_item("params", layer.param_count())?;
            layers.append(l)?;
        }
        d.set_item("layers", layers)?;
        d.set_item("params", net.param_count())?;
        d.set_item("metadata", self.metadata.clone())?;
        Ok(d)
    }

    /// The number of layers (the range of `theta_at`'s indices).
    fn num_layers(&self) -> usize {
        self.canonized.layers().len()
    }

    /// Explains `x` (float32, `[N, …]` or one sample). `target`: a list of classes (one, or one
    /// per sample) or None for "predicted". The other keyword arguments are the options of
    /// `klrp explain` (`ExplainOptions`' fields: `semiring`, `rule`, `theta_at`, …). Returns the
    /// input relevance, or every layer's.
    #[pyo3(signature = (x, target, keep_layers=false, **options))]
    fn explain(
        &self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        target: Option<Vec<usize>>,
        keep_layers: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let options = self::options(options)?;
        let targets = match target {
            None => Targets::Predicted,
            Some(c) if c.is_empty() => {
                return Err(PyValueError::new_err("target: give at least one class"));
            }
            Some(c) => classes(c),
        };
        let spec = ExplainSpec::from_options(&options).map_err(to_py)?;
        let (x, had_batch) = as_batch(&self.canonized, x.as_array().to_owned())?;
        let net = &self.canonized;
        let e = py
            .detach(|| spec.run(net, &x, &targets, keep_layers))
            .map_err(to_py)?;
        if keep_layers {
            let layers = e.layers.unwrap_or_default();
            let list = PyList::empty(py);
            for r in layers {
                list.append(to_numpy(py, r, had_batch))?;
            }
            Ok(list.into_any().unbind())
        } else {
            Ok(to_numpy(py, e.input, had_batch))
        }
    }

    /// The `top` most probable classes per sample: `[[(class, probability), …], …]`.
    fn predict(
        &self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        top: usize,
    ) -> PyResult<Vec<Vec<(usize, f64)>>> {
        let (x, _) = as_batch(&self.raw, x.as_array().to_owned())?;
        let net = &self.raw;
        let p = py
            .detach(|| klrp::spec::predict(net, &x, top))
            .map_err(to_py)?;
        Ok(p.into_iter()
            .map(|s| s.into_iter().map(|c| (c.class, c.probability)).collect())
            .collect())
    }

    /// Seconds per `ExplainSpec::run` call measured inside Rust (`repeats` calls, no Python in
    /// the loop, the median): the reference for the binding's overhead (docs/benchmarks.md).
    #[pyo3(signature = (x, target, semiring, repeats))]
    fn _time_explain_in_rust(
        &self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
        target: Vec<usize>,
        semiring: String,
        repeats: usize,
    ) -> PyResult<Vec<f64>> {
        let spec = ExplainSpec::from_options(&ExplainOptions {
            semiring: Some(semiring),
            ..ExplainOptions::default()
        })
        .map_err(to_py)?;
        let (x, _) = as_batch(&self.canonized, x.as_array().to_owned())?;
        let targets = classes(target);
        let net = &self.canonized;
        py.detach(|| {
            (0..repeats)
                .map(|_| {
                    let start = std::time::Instant::now();
                    spec.run(net, &x, &targets, false)?;
                    Ok(start.elapsed().as_secs_f64())
                })
                .collect::<klrp::Result<Vec<f64>>>()
        })
        .map_err(to_py)
    }

    /// The raw outputs (logits) of the network for a batch.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Py<PyAny>> {
        let (x, had_batch) = as_batch(&self.raw, x.as_array().to_owned())?;
        let net = &self.raw;
        let out = py.detach(|| net.forward(&x)).map_err(to_py)?;
        Ok(strip(out, had_batch).into_pyarray(py).into_any().unbind())
    }

    /// The units of the forward pass (of the canonized network `explain` uses) within float32
    /// rounding of a kink, as `[(layer, count), …]` for the layers with any
    /// (`Network::near_kinks`, docs/semantics.md §9).
    fn near_kinks(
        &self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, f32>,
    ) -> PyResult<Vec<(usize, usize)>> {
        let (x, _) = as_batch(&self.canonized, x.as_array().to_owned())?;
        let net = &self.canonized;
        let near = py
            .detach(|| net.trace(&x).and_then(|t| net.near_kinks(&t)))
            .map_err(to_py)?;
        Ok(near.layers().to_vec())
    }
}

impl Model {
    /// What an image becomes for this model: [`Preprocess::for_model`] with the overrides.
    fn preprocessing(
        &self,
        resize: Option<usize>,
        normalize: Option<&str>,
    ) -> PyResult<Preprocess> {
        let shape = self.raw.input_shape();
        let &[c, h, w] = shape else {
            return Err(PyValueError::new_err(format!(
                "the model's input {shape:?} is not an image ([C, H, W]); give x as an array"
            )));
        };
        let mut pre = Preprocess::for_model(&self.metadata, c, h, w).map_err(to_py)?;
        match normalize {
            None => {}
            Some("imagenet") if c == 3 => pre.normalize = Some(Normalization::imagenet()),
            Some("imagenet") => {
                return Err(PyValueError::new_err(
                    "normalize: imagenet needs a 3-channel model",
                ));
            }
            Some("none") => pre.normalize = None,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "normalize: '{other}' is not imagenet or none"
                )));
            }
        }
        match resize {
            Some(0) => return Err(PyValueError::new_err("resize: must be at least 1")),
            Some(s) => pre.resize = Some(s),
            None => {}
        }
        Ok(pre)
    }
}

/// `to_tensor`'s `[1, C, H, W]` as one sample `[C, H, W]`.
fn sample3(x: ArrayD<f32>) -> Array3<f32> {
    x.index_axis_move(Axis(0), 0)
        .into_dimensionality::<Ix3>()
        .expect("to_tensor returns [1, C, H, W]")
}

fn colormap(name: &str) -> PyResult<Colormap> {
    Ok(match name {
        "bwr" => Colormap::Bwr,
        "gray" => Colormap::Gray,
        "gray_r" => Colormap::GrayR,
        "viridis" => Colormap::Viridis,
        "hot" => Colormap::Hot,
        other => {
            return Err(PyValueError::new_err(format!(
                "cmap: '{other}' is not bwr, gray, gray_r, viridis or hot"
            )));
        }
    })
}

fn scale(name: &str) -> PyResult<Scale> {
    Ok(match name {
        "symmetric" => Scale::Symmetric,
        "minmax" => Scale::MinMax,
        "log1p" => Scale::Log1p,
        other => {
            return Err(PyValueError::new_err(format!(
                "scale: '{other}' is not symmetric, minmax or log1p"
            )));
        }
    })
}

fn rgb_to_numpy(img: &RgbImage) -> Array3<u8> {
    Array3::from_shape_vec((img.height(), img.width(), 3), img.as_raw().to_vec())
        .expect("an RgbImage holds height × width × 3 bytes")
}

/// A relevance map (`[H, W]`, or `[C, H, W]` summed over channels, as float64) → RGB `[H, W, 3]`.
#[pyfunction]
fn heatmap<'py>(
    py: Python<'py>,
    relevance: PyReadonlyArrayDyn<'py, f64>,
    cmap: &str,
    scale_name: &str,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let (cmap, scale) = (colormap(cmap)?, scale(scale_name)?);
    let r = relevance.as_array();
    let map = match r.ndim() {
        2 => r.into_dimensionality::<Ix2>().expect("2-D").to_owned(),
        3 => r
            .into_dimensionality::<Ix3>()
            .expect("3-D")
            .sum_axis(Axis(0)),
        n => {
            return Err(PyValueError::new_err(format!(
                "heatmap: relevance must be [H, W] or [C, H, W], got {n} dimensions"
            )));
        }
    };
    let img = klrp::viz::heatmap_rgb(map.view(), cmap, scale);
    Ok(rgb_to_numpy(&img).into_pyarray(py))
}

/// Writes an RGB uint8 array `[H, W, 3]` as a PNG file.
#[pyfunction]
fn write_png(path: std::path::PathBuf, rgb: PyReadonlyArray3<'_, u8>) -> PyResult<()> {
    let a = rgb.as_array();
    let (h, w, c) = a.dim();
    if c != 3 {
        return Err(PyValueError::new_err(format!(
            "write_png: the array must be [H, W, 3], got [{h}, {w}, {c}]"
        )));
    }
    let img = RgbImage::from_raw(w, h, a.iter().copied().collect()).map_err(to_py)?;
    klrp::viz::save_png(&path, &img).map_err(to_py)
}

/// Reads MNIST-style IDX files: images `[N, rows·cols]` float32 in [0, 1] and labels uint8.
#[pyfunction]
fn load_mnist<'py>(
    py: Python<'py>,
    images: std::path::PathBuf,
    labels: std::path::PathBuf,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Py<PyAny>)> {
    let m = py
        .detach(|| Mnist::from_files(&images, &labels))
        .map_err(to_py)?;
    let labels = m.labels.into_pyarray(py).into_any().unbind();
    Ok((m.images.into_pyarray(py), labels))
}

#[pymodule]
fn _klrp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(heatmap, m)?)?;
    m.add_function(wrap_pyfunction!(write_png, m)?)?;
    m.add_function(wrap_pyfunction!(load_mnist, m)?)?;
    m.add("DEFAULT_THETA", klrp::spec::DEFAULT_THETA)?;
    m.add("DEFAULT_TOP", klrp::spec::DEFAULT_TOP)?;
    Ok(())
}

/// One class for every sample (a list of one) or one class per sample.
fn classes(c: Vec<usize>) -> Targets {
    match c.as_slice() {
        [one] => Targets::Class(*one),
        _ => Targets::PerSample(c),
    }
}
