//! pytorch-grad-cam's call shape: maps for network inputs the caller already preprocessed,
//! with explicit targets, through the library's [`Cam`] runner.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use gradcam::cam::{
    self, Cam, CamOptions, ClassLogit, ClassSoftmax, CosineSimilarity, InputGradient, Target,
    Targets,
};
use gradcam::kernels::on_worker;
use gradcam::model::CamModel;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::args::arg;
use crate::convert::{buffer, error, floats, model_of};

/// The arguments both functions share: model, input `[B, 3, H, W]`, method, layers, targets,
/// options.
struct Call {
    model: Arc<dyn CamModel>,
    input: Tensor<4>,
    method: &'static cam::MethodInfo,
    layers: Vec<String>,
    targets: Targets,
    options: CamOptions,
}

fn invalid(py: Python<'_>, message: String) -> PyErr {
    error(py, gradcam::Error::Invalid(message))
}

/// One target: `("logit", c)`, `("softmax", c)` or `("cosine", [values])`.
fn target(py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Target>> {
    let (kind, value): (String, Bound<'_, PyAny>) = item.extract()?;
    Ok(match kind.as_str() {
        "logit" => Arc::new(ClassLogit(value.extract()?)),
        "softmax" => Arc::new(ClassSoftmax(value.extract()?)),
        "cosine" => Arc::new(CosineSimilarity {
            reference: value.extract()?,
        }),
        other => return Err(invalid(py, format!("unknown target kind `{other}`"))),
    })
}

impl Call {
    fn parse(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Self> {
        let model = model_of(&args.get_item(0)?)?;
        let (data, shape) = buffer::<f32>(&args.get_item(1)?, "input_tensor must be float32")?;
        let [b, c, h, w] = shape[..] else {
            return Err(invalid(
                py,
                format!("input_tensor must have shape (batch, 3, height, width), got {shape:?}"),
            ));
        };
        if c != 3 || b == 0 || h == 0 || w == 0 {
            return Err(invalid(
                py,
                format!("input_tensor must have shape (batch, 3, height, width), got {shape:?}"),
            ));
        }
        let input = Tensor::from_data(TensorData::new(data, [b, c, h, w]), &Device::flex());
        let name: String = arg(args, 2, "method")?;
        let method = cam::method_info(&name).map_err(|e| error(py, e))?;
        let layers: Vec<String> = arg(args, 3, "target_layers")?;
        let targets = args.get_item(4)?;
        let targets = if targets.is_none() {
            Targets::Rank(0)
        } else {
            Targets::PerImage(
                targets
                    .try_iter()?
                    .map(|t| target(py, &t?))
                    .collect::<PyResult<_>>()?,
            )
        };
        let options = args.get_item(5)?;
        let options = options.cast::<PyDict>()?;
        let flag = |key: &str| -> PyResult<bool> {
            Ok(match options.get_item(key)? {
                Some(v) => v.is_truthy()?,
                None => false,
            })
        };
        Ok(Call {
            model,
            input,
            method,
            layers,
            targets,
            options: CamOptions {
                counterfactual: flag("counterfactual")?,
                eigen_smooth: flag("eigen_smooth")?,
                aug_smooth: flag("aug_smooth")?,
            },
        })
    }
}

/// `run_cam(model, input, method, layers, targets, options)`: the final maps `(B, H, W)` as
/// pytorch-grad-cam returns them, with the explained classes and scores.
pub fn run_cam(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let call = Call::parse(py, args)?;
    let [b, _, h, w] = call.input.dims();
    let out = py
        .detach(|| {
            on_worker(|| {
                let rule = call.method.build();
                Cam::new(call.model.as_ref(), rule.as_ref(), &call.layers)?
                    .with_options(call.options)
                    .run(call.input, &call.targets)
            })
        })
        .map_err(|e| error(py, e))?;
    let d = PyDict::new(py);
    d.set_item("maps", floats(py, &out.maps.concat())?)?;
    d.set_item("shape", (b, h, w))?;
    d.set_item("classes", out.classes)?;
    d.set_item("scores", out.scores)?;
    Ok(d.into_any().unbind())
}

/// `run_guided(...)`, the same arguments: guided backpropagation's input gradient, or Guided
/// Grad-CAM's, `(B, H, W, 3)`.
pub fn run_guided(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let call = Call::parse(py, args)?;
    let [b, _, h, w] = call.input.dims();
    let Some(kind) = call.method.input_gradient else {
        return Err(invalid(
            py,
            format!("`{}` makes no input-gradient image", call.method.name),
        ));
    };
    let guided = py
        .detach(|| {
            on_worker(|| match kind {
                InputGradient::GuidedBackprop => {
                    cam::guided_backprop(call.model.as_ref(), call.input, &call.targets)
                }
                InputGradient::GuidedGradCam => {
                    let rule = call.method.build();
                    let runner = Cam::new(call.model.as_ref(), rule.as_ref(), &call.layers)?
                        .with_options(call.options);
                    cam::guided_gradcam(&runner, call.input, &call.targets)
                }
            })
        })
        .map_err(|e| error(py, e))?;
    let d = PyDict::new(py);
    d.set_item("guided", floats(py, &guided.concat())?)?;
    d.set_item("shape", (b, h, w, 3))?;
    Ok(d.into_any().unbind())
}

/// `run_dff(model, input, layer, n_components)`: pytorch-grad-cam's `DeepFeatureFactorization`
/// on a preprocessed input `[B, 3, H, W]`: the concepts `(C, K)`, each image's concept maps
/// `(B, K, H, W)` and, when a GAP + linear classifier follows the layer, each concept's logits
/// `(K, classes)` (else `None`).
pub fn run_dff(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let model = model_of(&args.get_item(0)?)?;
    let (data, shape) = buffer::<f32>(&args.get_item(1)?, "input_tensor must be float32")?;
    let [b, 3, h, w] = shape[..] else {
        return Err(invalid(
            py,
            format!("input_tensor must have shape (batch, 3, height, width), got {shape:?}"),
        ));
    };
    if b == 0 || h == 0 || w == 0 {
        return Err(invalid(
            py,
            format!("input_tensor must have shape (batch, 3, height, width), got {shape:?}"),
        ));
    }
    let layer: String = arg(args, 2, "target_layer")?;
    let k: usize = arg(args, 3, "n_components")?;
    let input = Tensor::from_data(TensorData::new(data, [b, 3, h, w]), &Device::flex());
    let out = py
        .detach(|| on_worker(|| cam::deep_feature_factorization(model.as_ref(), input, &layer, k)))
        .map_err(|e| error(py, e))?;
    let d = PyDict::new(py);
    d.set_item("concepts", floats(py, &out.concepts)?)?;
    d.set_item("concepts_shape", (out.channels, out.k))?;
    d.set_item("maps", floats(py, &out.maps.concat().concat())?)?;
    d.set_item("maps_shape", (b, out.k, h, w))?;
    if out.scores.is_empty() {
        d.set_item("scores", py.None())?;
    } else {
        let classes = out.scores[0].len();
        d.set_item("scores", floats(py, &out.scores.concat())?)?;
        d.set_item("scores_shape", (out.k, classes))?;
    }
    d.set_item("iterations", out.iterations)?;
    Ok(d.into_any().unbind())
}
