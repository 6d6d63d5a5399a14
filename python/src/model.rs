//! Models and the method table: loading through [`ModelSpec`], what a model offers, and
//! [`METHODS`] for the Python side to generate its compat classes from.

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::Device;
use gradcam::cam::METHODS;
use gradcam::model::{CamModel, ModelSpec, OnnxOptions, Reshape};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::args::arg;
use crate::convert::{error, get, model_capsule, model_of};

/// `load_model(name, weights, num_classes, onnx)`: a built-in name (with a checkpoint or its
/// default weights) or an ONNX file (`onnx`: the dict of its [`OnnxOptions`]), loaded once with
/// the GIL released.
pub fn load_model(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let onnx = args.get_item(3)?;
    let onnx = onnx.cast::<PyDict>()?;
    let reshape: Option<String> = get(onnx, "reshape")?;
    let spec = ModelSpec {
        name: arg(args, 0, "model")?,
        weights: arg::<Option<PathBuf>>(args, 1, "weights")?,
        num_classes: arg(args, 2, "num_classes")?,
        onnx: OnnxOptions {
            input_size: get(onnx, "input_size")?,
            mean: get(onnx, "mean")?,
            std: get(onnx, "std")?,
            reshape: reshape
                .map(|r| r.parse::<Reshape>())
                .transpose()
                .map_err(|e| error(py, e))?,
            output: get(onnx, "output")?,
            labels: get(onnx, "labels")?,
        },
    };
    let model = py
        .detach(|| spec.load(&Device::flex()))
        .map_err(|e| error(py, e))?;
    model_capsule(py, Arc::from(model))
}

/// `model_info(model)`: name, layers `(name, channels, (height, width))` at the model's input
/// size, default layer, classes, input size and normalisation, default batch size.
pub fn model_info(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let model: Arc<dyn CamModel> = model_of(&args.get_item(0)?)?;
    let p = model.preprocess();
    let info = PyDict::new(py);
    info.set_item("name", model.name())?;
    let layers: Vec<(String, usize, (usize, usize))> = model
        .layers()
        .iter()
        .map(|l| {
            let [c, h, w] = l.output_shape(p.size);
            (l.name.clone(), c, (h, w))
        })
        .collect();
    info.set_item("layers", layers)?;
    info.set_item("default_layer", model.default_layer())?;
    info.set_item("num_classes", model.num_classes())?;
    info.set_item("input_size", p.size)?;
    info.set_item("mean", p.mean.to_vec())?;
    info.set_item("std", p.std.to_vec())?;
    info.set_item("default_batch_size", model.default_batch_size())?;
    Ok(info.into_any().unbind())
}

/// `methods()`: the rows of the library's method table.
pub fn methods(py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let rows = PyList::empty(py);
    for m in METHODS {
        let row = PyDict::new(py);
        row.set_item("name", m.name)?;
        row.set_item("aliases", m.aliases.to_vec())?;
        row.set_item("summary", m.summary)?;
        row.set_item("uses_gradients", m.uses_gradients())?;
        row.set_item("input_gradient", m.input_gradient.is_some())?;
        row.set_item("concepts", m.finds_concepts())?;
        rows.append(row)?;
    }
    Ok(rows.into_any().unbind())
}
