//! Any ONNX classifier as a [`CamModel`], run by the interpreter of [`crate::onnx`].
//!
//! Its layers are the graph's tensors that read as maps: `(B, C, H, W)` feature maps, `(B, N, C)`
//! token tensors of vision transformers (`N` = leading class / distillation tokens + an `h x w`
//! grid) and `(B, H, W, C)` channel-last stages (Swin, ConvNeXt blocks). A token tensor becomes a
//! map as pytorch-grad-cam's `reshape_transform` makes it, without the leading tokens; those cross
//! the cut as constants, so the head sees the same tensor and the map's gradients are the grid
//! tokens' gradients. Layer names are PyTorch module paths (from the exporter's scopes) and ONNX
//! tensor names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use burn::tensor::{Tensor, TensorData};

use super::{
    AttentionForward, BiasProbe, CamModel, Cut, CutContext, Forward, Grid, Layer, Preprocess,
};
use crate::error::{Error, Result};
use crate::onnx::{self, Float, Graph, OnnxError, Split};

/// How the token tensors of a transformer are read as maps (`--reshape`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Reshape {
    /// Only `(B, C, H, W)` tensors are maps (`none`).
    None,
    /// `(B, N, C)` tokens: `K` leading tokens, then a row-major grid (`vit`: 1, `deit`: 2,
    /// `tokens:K`).
    Tokens(usize),
    /// `(B, H, W, C)` channel-last tensors are maps too (`swin`).
    ChannelLast,
}

impl FromStr for Reshape {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Reshape::None,
            "vit" => Reshape::Tokens(1),
            "deit" => Reshape::Tokens(2),
            "swin" => Reshape::ChannelLast,
            _ => match s.strip_prefix("tokens:").map(str::parse::<usize>) {
                Some(Ok(k)) => Reshape::Tokens(k),
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown reshape `{s}`; expected vit, deit, swin, none or tokens:K"
                    )));
                }
            },
        })
    }
}

/// What an ONNX file does not say about itself: how to feed it and read it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OnnxOptions {
    /// Network input (height, width); read from the graph when its input is static.
    pub input_size: Option<(usize, usize)>,
    /// Per-channel mean and standard deviation of RGB in [0, 1] (default: ImageNet's).
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    /// How token tensors become maps (default: detected from their shapes).
    pub reshape: Option<Reshape>,
    /// The output holding the logits, when the graph has several.
    pub output: Option<String>,
    /// Class names, one per output (default: ImageNet's for 1000 outputs, else indices).
    pub labels: Option<PathBuf>,
}

/// How a layer's tensor is laid out, and so how it becomes a `(B, C, h, w)` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Map,
    ChannelLast,
    Tokens {
        prefix: usize,
        height: usize,
        width: usize,
    },
}

/// A layer: the tensor, its layout, and the names it answers to.
#[derive(Debug, Clone)]
struct CutPoint {
    tensor: String,
    layout: Layout,
}

/// The input's layout: NCHW (PyTorch) or NHWC (tf2onnx exports of Keras models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputLayout {
    Nchw,
    Nhwc,
}

/// An ONNX classifier (see the module doc).
pub struct OnnxModel {
    name: String,
    graph: Arc<Graph>,
    input_layout: InputLayout,
    /// The graph was exported for batches of one: it runs image by image.
    single_image: bool,
    /// Index of the logits among the graph's outputs.
    output: usize,
    /// `[classes, height, width]` for a segmentation output (B, K, H, W), read flattened.
    output_map: Option<[usize; 3]>,
    layers: Vec<Layer>,
    cuts: Vec<CutPoint>,
    names: HashMap<String, usize>,
    default_layer: String,
    preprocess: Preprocess,
    num_classes: usize,
    labels: Option<Vec<String>>,
    splits: Mutex<HashMap<usize, Arc<Split>>>,
    /// The transformer blocks for LeGrad, or why the graph has none.
    attention: std::result::Result<onnx::Attention, String>,
}

/// The body's side of a cut of an ONNX model: the tensors crossing it, per run of the body.
pub(crate) struct CutState {
    /// One context per body run: one for the batch, or one per image.
    contexts: Vec<onnx::Context>,
    /// The leading tokens of a token layer, `[batch, prefix, channels]`.
    prefix: Option<Tensor<3>>,
}

impl CutState {
    /// Whether the body ran image by image, so the head must too: always for a graph of a
    /// fixed batch of one (whose head takes one row at a time, also several copies of one
    /// image), else when there is a context per image.
    fn per_image(&self, single_image: bool) -> bool {
        single_image || self.contexts.len() > 1
    }
}

fn invalid(message: String) -> Error {
    Error::Onnx(OnnxError::Invalid(message))
}

impl OnnxModel {
    /// Loads `path` and finds its layers, logits and default layer.
    pub fn load(path: &Path, options: &OnnxOptions) -> Result<OnnxModel> {
        let graph = Arc::new(onnx::load(path)?);
        let input = match graph.inputs() {
            [input] => input.clone(),
            inputs => {
                return Err(Error::Onnx(OnnxError::Invalid(format!(
                    "{}: the model has {} inputs; one image input is supported",
                    path.display(),
                    inputs.len()
                ))));
            }
        };
        let (input_layout, graph_size) = match input.dims[..] {
            [_, Some(3), h, w] => (InputLayout::Nchw, h.zip(w)),
            [_, h, w, Some(3)] => (InputLayout::Nhwc, h.zip(w)),
            _ => {
                return Err(Error::Onnx(OnnxError::Invalid(format!(
                    "{}: input `{}` has shape {}; an image batch (N, 3, H, W) or (N, H, W, 3) is expected",
                    path.display(),
                    input.name,
                    show_dims(&input.dims)
                ))));
            }
        };
        let size = match (options.input_size, graph_size) {
            (Some(given), Some(fixed)) if given != fixed => {
                return Err(Error::Invalid(format!(
                    "--input-size {}x{} does not fit the model, whose input is {}x{}",
                    given.0, given.1, fixed.0, fixed.1
                )));
            }
            (Some(size), _) | (None, Some(size)) => size,
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "the input of {} has no fixed size; give one with --input-size HxW",
                    path.display()
                )));
            }
        };
        let single_image = match input.dims[0] {
            None | Some(1) => input.dims[0].is_some(),
            Some(b) => {
                return Err(Error::Invalid(format!(
                    "{} was exported for batches of exactly {b}; export it with a dynamic batch \
                     (torch.onnx.export(..., dynamic_axes={{'input': {{0: 'batch'}}}})) or a batch of 1",
                    path.display()
                )));
            }
        };
        let dims = match input_layout {
            InputLayout::Nchw => vec![1, 3, size.0, size.1],
            InputLayout::Nhwc => vec![1, size.0, size.1, 3],
        };
        let tensors = onnx::layers_at(&graph, &dims)?;
        let (output, num_classes, output_map) =
            pick_output(&graph, &tensors, options.output.as_deref())?;

        let (layers, cuts, names) = read_layers(&tensors, size, options.reshape);
        if layers.is_empty() {
            return Err(Error::Invalid(format!(
                "{} has no tensor that reads as a feature map (B, C, H, W), token grid (B, N, C) \
                 or channel-last map (B, H, W, C) at input size {}x{}",
                path.display(),
                size.0,
                size.1
            )));
        }
        let labels = options
            .labels
            .as_deref()
            .map(|p| read_labels(p, num_classes))
            .transpose()?;
        let attention = onnx::Attention::find(&graph, &tensors).map_err(|e| e.to_string());
        let mut model = OnnxModel {
            name: path
                .file_stem()
                .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned()),
            graph,
            input_layout,
            single_image,
            output,
            output_map,
            layers,
            cuts,
            names,
            default_layer: String::new(),
            preprocess: Preprocess {
                size,
                mean: options.mean.unwrap_or(Preprocess::IMAGENET.mean),
                std: options.std.unwrap_or(Preprocess::IMAGENET.std),
            },
            num_classes,
            labels,
            splits: Mutex::new(HashMap::new()),
            attention,
        };
        model.default_layer = model.layers[model.find_default_layer()?].name.clone();
        Ok(model)
    }

    /// The transformer blocks, or an error saying why the graph has none.
    fn attention(&self) -> Result<&onnx::Attention> {
        // The request's fault (a method the model cannot take), not the interpreter's.
        self.attention.as_ref().map_err(|m| {
            Error::Invalid(format!(
                "{}: LeGrad cannot run on this graph: {m}",
                self.name
            ))
        })
    }

    /// The ONNX tensor behind layer `layer`.
    pub fn tensor_of(&self, layer: usize) -> &str {
        &self.cuts[layer].tensor
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The last layer whose map the top logit depends on at more than one position, preferring
    /// the last layer's width: the last feature map before global pooling (torchcam's choice),
    /// and for a vision transformer the input of the last block's attention (its `norm1`;
    /// after the attention, a class-token head reads the class token only). Tried from the last
    /// layer back, on a fixed pseudo-random image.
    fn find_default_layer(&self) -> Result<usize> {
        let (h, w) = self.preprocess.size;
        let mut state = 0x2545_f491u32;
        let probe: Vec<f32> = (0..3 * h * w)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 4.0 - 2.0
            })
            .collect();
        let x = self.preprocess.tensor(probe);
        let width = self.layers.last().map_or(0, |l| l.channels);
        // The last layer's width first (a probe is a pass of the body): the others only if
        // none of those spreads.
        let (same, other): (Vec<usize>, Vec<usize>) = (0..self.layers.len())
            .rev()
            .partition(|&l| self.layers[l].channels == width);
        let mut last_error = None;
        for layer in same.into_iter().chain(other) {
            match self.spreads_gradient(x.clone(), layer) {
                Ok(true) => return Ok(layer),
                Ok(false) => {}
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e),
            None => Ok(self.layers.len() - 1),
        }
    }

    /// Whether the top logit's gradient at `layer` is non-zero at two positions or more.
    fn spreads_gradient(&self, x: Tensor<4>, layer: usize) -> Result<bool> {
        let cut = self.forward_to(x, layer)?;
        let leaf = cut.activations.autodiff().require_grad();
        let logits = self.forward_from(leaf.clone(), &cut.context, None)?;
        let top = logits.clone().detach().argmax(1).into_scalar::<i64>() as usize;
        let grads = logits.narrow(1, top, 1).sum().backward();
        let Some(gradient) = leaf.grad(&grads) else {
            return Ok(false);
        };
        let per_position = crate::cam::flat(gradient.abs().sum_dim(1));
        Ok(per_position.iter().filter(|&&g| g > 0.0).count() >= 2)
    }

    fn split(&self, layer: usize) -> Result<Arc<Split>> {
        let mut splits = self.splits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = splits.get(&layer) {
            return Ok(Arc::clone(s));
        }
        let split = Arc::new(self.graph.split(&[self.cuts[layer].tensor.as_str()])?);
        splits.insert(layer, Arc::clone(&split));
        Ok(split)
    }

    /// The network input as the graph takes it.
    fn graph_input(&self, x: Tensor<4>) -> Float {
        Float::from_tensor(match self.input_layout {
            InputLayout::Nchw => x,
            InputLayout::Nhwc => x.permute([0, 2, 3, 1]),
        })
    }

    /// The logits among the graph's outputs, `[batch, classes]` (a segmentation output's
    /// maps flattened: `[batch, classes * height * width]`).
    fn logits(&self, mut outputs: Vec<Float>) -> Result<Tensor<2>> {
        let output = outputs.swap_remove(self.output);
        match self.output_map {
            None => output.to_tensor::<2>().map_err(|e| invalid(e.0)),
            Some(_) => Ok(output
                .to_tensor::<4>()
                .map_err(|e| invalid(e.0))?
                .flatten(1, 3)),
        }
    }

    /// The images of `x` in the batches the graph takes: all at once, or one by one.
    fn batches(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let n = x.dims()[0];
        if self.single_image && n > 1 {
            (0..n).map(|i| x.clone().narrow(0, i, 1)).collect()
        } else {
            vec![x]
        }
    }
}

/// The tensors that read as maps (see [`layout_of`]): the layers, how to cut at each, and every
/// name (module path or tensor name) each answers to.
fn read_layers(
    tensors: &[onnx::Layer],
    size: (usize, usize),
    reshape: Option<Reshape>,
) -> (Vec<Layer>, Vec<CutPoint>, HashMap<String, usize>) {
    let token_counts: Vec<usize> = tensors
        .iter()
        .filter_map(|t| match layout_of(&t.shape, size, reshape, &[]) {
            Some((Layout::Tokens { .. }, ..)) => Some(t.shape[1]),
            _ => None,
        })
        .collect();
    let mut layers = vec![];
    let mut cuts = vec![];
    let mut names = HashMap::new();
    for t in tensors {
        let Some((layout, channels, height, width)) =
            layout_of(&t.shape, size, reshape, &token_counts)
        else {
            continue;
        };
        // A token count seen once is a transposed (B, C, N) view, not a token sequence.
        let seen = |n: usize| token_counts.iter().filter(|&&c| c == n).count();
        if matches!(layout, Layout::Tokens { .. }) && seen(t.shape[1]) < 2 {
            continue;
        }
        let index = layers.len();
        let name = t.modules.first().unwrap_or(&t.tensor).clone();
        for alias in t.modules.iter().chain([&t.tensor]) {
            names.entry(alias.clone()).or_insert(index);
        }
        let aliases = t
            .modules
            .iter()
            .chain([&t.tensor])
            .filter(|a| **a != name)
            .cloned()
            .collect();
        layers.push(Layer {
            name,
            channels,
            grid: Grid::Fixed { height, width },
            aliases,
        });
        cuts.push(CutPoint {
            tensor: t.tensor.clone(),
            layout,
        });
    }
    (layers, cuts, names)
}

/// The index of the logits output, its number of classes and, for a segmentation output
/// (B, K, H, W), its `[K, H, W]`.
fn pick_output(
    graph: &Graph,
    tensors: &[onnx::Layer],
    wanted: Option<&str>,
) -> Result<(usize, usize, Option<[usize; 3]>)> {
    let names = graph.output_names();
    let shape_of = |name: &str| {
        tensors
            .iter()
            .find(|t| t.tensor == name)
            .map(|t| t.shape.clone())
    };
    let index = match wanted {
        Some(w) => names.iter().position(|n| *n == w).ok_or_else(|| {
            Error::Invalid(format!(
                "no output `{w}`; the model's outputs: {}",
                names.join(", ")
            ))
        })?,
        None if names.len() == 1 => 0,
        None => {
            let two_d: Vec<usize> = (0..names.len())
                .filter(|&i| shape_of(names[i]).is_some_and(|s| s.len() == 2))
                .collect();
            match two_d[..] {
                [i] => i,
                _ => {
                    return Err(Error::Invalid(format!(
                        "the model has {} outputs ({}); pick the logits with --output NAME",
                        names.len(),
                        names.join(", ")
                    )));
                }
            }
        }
    };
    match shape_of(names[index]).as_deref() {
        Some(&[1, classes]) if classes > 0 => Ok((index, classes, None)),
        Some(&[1, k, h, w]) if k * h * w > 0 => Ok((index, k, Some([k, h, w]))),
        shape => Err(Error::Invalid(format!(
            "output `{}` has shape {}; explaining needs logits of shape (batch, classes) or \
             (batch, classes, height, width)",
            names[index],
            shape.map_or("unknown".into(), |s| format!("{s:?}"))
        ))),
    }
}

/// How a tensor of per-image `shape` (batch 1 first) reads as a `channels x height x width` map
/// for an input of `size`, or `None` if it does not. `tokens` holds the token counts of the
/// graph's token tensors: a 4-D tensor with such a dimension is attention, not a map.
fn layout_of(
    shape: &[usize],
    size: (usize, usize),
    reshape: Option<Reshape>,
    tokens: &[usize],
) -> Option<(Layout, usize, usize, usize)> {
    let attention = |h: usize, w: usize| tokens.contains(&h) || tokens.contains(&w);
    let tokens_of = |n: usize, c: usize, prefix: usize| {
        let (h, w) = token_grid(n.checked_sub(prefix)?, size)?;
        let layout = Layout::Tokens {
            prefix,
            height: h,
            width: w,
        };
        Some((layout, c, h, w))
    };
    match (shape, reshape) {
        (&[1, c, h, w], _) if is_grid(h, w, size) && !attention(h, w) => {
            Some((Layout::Map, c, h, w))
        }
        (&[1, h, w, c], None | Some(Reshape::ChannelLast)) if c > 1 && is_grid(h, w, size) => {
            Some((Layout::ChannelLast, c, h, w))
        }
        (&[1, n, c], None) if c > 1 => [1, 2, 0].into_iter().find_map(|k| tokens_of(n, c, k)),
        (&[1, n, c], Some(Reshape::Tokens(k))) if c > 1 => tokens_of(n, c, k),
        _ => None,
    }
}

/// Whether `h x w` is the input's grid at some stride: the input's size, or smaller by 1.5 or
/// more with the same aspect (within a cell's rounding).
fn is_grid(h: usize, w: usize, (height, width): (usize, usize)) -> bool {
    if h * w < 2 || h > height || w > width {
        return false;
    }
    if (h, w) == (height, width) {
        return true;
    }
    let skew = (h * width).abs_diff(w * height);
    3 * h <= 2 * height && 3 * w <= 2 * width && 2 * skew <= height.max(width)
}

/// The `h x w` grid of `tokens` tokens for an input of `size`: the same aspect as the input.
fn token_grid(tokens: usize, (height, width): (usize, usize)) -> Option<(usize, usize)> {
    (1..=tokens)
        .filter(|h| tokens.is_multiple_of(*h))
        .map(|h| (h, tokens / h))
        .find(|&(h, w)| h * width == w * height && h * w >= 2)
        .filter(|&(h, _)| h <= height / 2)
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("({})", parts.join(", "))
}

/// One class name per line, as many as the model has outputs.
fn read_labels(path: &Path, num_classes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if labels.len() != num_classes {
        return Err(Error::Invalid(format!(
            "{} has {} labels but the model has {num_classes} outputs",
            path.display(),
            labels.len()
        )));
    }
    Ok(labels)
}

impl Layout {
    /// The cut tensor as a `(B, C, h, w)` map, and the leading tokens it drops.
    fn to_map(self, tensor: &Float) -> Result<(Tensor<4>, Option<Tensor<3>>)> {
        Ok(match self {
            Layout::Map => (tensor.to_tensor::<4>().map_err(|e| invalid(e.0))?, None),
            Layout::ChannelLast => (
                tensor
                    .to_tensor::<4>()
                    .map_err(|e| invalid(e.0))?
                    .permute([0, 3, 1, 2]),
                None,
            ),
            Layout::Tokens {
                prefix,
                height,
                width,
            } => {
                let t = tensor.to_tensor::<3>().map_err(|e| invalid(e.0))?;
                let [b, _, c] = t.dims();
                let grid = t
                    .clone()
                    .narrow(1, prefix, height * width)
                    .reshape([b, height, width, c])
                    .permute([0, 3, 1, 2]);
                (grid, (prefix > 0).then(|| t.narrow(1, 0, prefix)))
            }
        })
    }

    /// The inverse of [`Layout::to_map`]: the graph's tensor from a map and the leading tokens
    /// of the images its rows belong to.
    fn graph_tensor(self, map: Tensor<4>, prefix: Option<Tensor<3>>) -> Float {
        match self {
            Layout::Map => Float::from_tensor(map),
            Layout::ChannelLast => Float::from_tensor(map.permute([0, 2, 3, 1])),
            Layout::Tokens { .. } => {
                let [b, c, h, w] = map.dims();
                let grid = map.permute([0, 2, 3, 1]).reshape([b, h * w, c]);
                Float::from_tensor(match prefix {
                    Some(p) => Tensor::cat(vec![p, grid], 1),
                    None => grid,
                })
            }
        }
    }
}

/// What the ONNX model's body left for its head in a cut.
fn cut_state(context: &CutContext) -> Result<&CutState> {
    context
        .graph
        .as_deref()
        .ok_or_else(|| Error::Invalid("this cut was not made by the ONNX model's body".to_string()))
}

/// Row `i` of a graph tensor's batch, as a batch of one (a fixed-batch graph's head input).
fn batch_row(value: &Float, i: usize) -> Result<Float> {
    let mut shape = value.shape().to_vec();
    shape[0] = 1;
    let one = value.padded().clone().narrow(value.padded_axis(0), i, 1);
    Float::from_padded(one, shape).map_err(|e| invalid(e.0))
}

/// Rows `rows` of `t` (all of them when `None`).
fn select_rows(t: Tensor<3>, rows: Option<&[usize]>) -> Tensor<3> {
    match rows {
        None => t,
        Some(rows) => {
            let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            let device = t.device();
            t.select(
                0,
                Tensor::from_data(TensorData::new(index, [rows.len()]), &device),
            )
        }
    }
}

impl Forward for OnnxModel {
    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        // Without autodiff the images go to the threads, each in a batch of one (which a graph
        // with a dynamic batch takes as well).
        super::image_by_image(x, |x| {
            let mut logits = vec![];
            for batch in self.batches(x) {
                logits.push(self.logits(self.graph.run(self.graph_input(batch))?)?);
            }
            Ok(Tensor::cat(logits, 0))
        })
    }

    /// A batch without autodiff runs image by image on rayon's threads (as
    /// [`Forward::forward`]), with a context per image for the head.
    fn forward_to(&self, x: Tensor<4>, layer: usize) -> Result<Cut> {
        let split = self.split(layer)?;
        let layout = self.cuts[layer].layout;
        let body = |batch: Tensor<4>| {
            let (mut cuts, context) = split.body(self.graph_input(batch))?;
            let (map, prefix) = layout.to_map(&cuts.swap_remove(0))?;
            Ok((map, prefix, context))
        };
        let bodies = if super::splits_into_images(&x) {
            super::each_image(&x, body)?
        } else {
            self.batches(x)
                .into_iter()
                .map(body)
                .collect::<Result<Vec<_>>>()?
        };
        let (mut maps, mut prefixes, mut contexts) = (vec![], vec![], vec![]);
        for (map, prefix, context) in bodies {
            maps.push(map);
            prefixes.extend(prefix);
            contexts.push(context);
        }
        let prefix = (!prefixes.is_empty()).then(|| Tensor::cat(prefixes, 0));
        Ok(Cut {
            activations: Tensor::cat(maps, 0),
            context: CutContext {
                layer,
                graph: Some(Arc::new(CutState { contexts, prefix })),
            },
        })
    }

    fn forward_from(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        rows: Option<&[usize]>,
    ) -> Result<Tensor<2>> {
        let layer = context.layer;
        let state = cut_state(context)?;
        let split = self.split(layer)?;
        let layout = self.cuts[layer].layout;
        let prefix = state.prefix.clone().map(|p| select_rows(p, rows));
        let value = layout.graph_tensor(activations, prefix);
        if !state.per_image(self.single_image) {
            return self.logits(split.head(vec![value], &state.contexts[0], rows)?);
        }
        let n = value.shape()[0];
        let mut logits = vec![];
        for i in 0..n {
            let image = rows.map_or(i, |r| r[i]);
            let row = batch_row(&value, i)?;
            let context = state
                .contexts
                .get(image)
                .ok_or_else(|| Error::Invalid(format!("row {image} is beyond the body's batch")))?;
            logits.push(self.logits(split.head(vec![row], context, None)?)?);
        }
        Ok(Tensor::cat(logits, 0))
    }

    /// The head run up to layer `until`'s tensor only, as a map (tokens: the grid's), averaged
    /// over space.
    fn forward_pooled(
        &self,
        activations: Tensor<4>,
        context: &CutContext,
        until: usize,
    ) -> Result<Tensor<2>> {
        let layer = context.layer;
        let state = cut_state(context)?;
        let split = self.split(layer)?;
        let prefix = state.prefix.clone();
        let value = self.cuts[layer].layout.graph_tensor(activations, prefix);
        let target = self.cuts[until].tensor.as_str();
        let pooled = |value, context| -> Result<Tensor<2>> {
            let inner = split.head_to(vec![value], context, target)?;
            let (map, _) = self.cuts[until].layout.to_map(&inner)?;
            Ok(map.mean_dims(&[2, 3]).flatten(1, 3))
        };
        if !state.per_image(self.single_image) {
            return pooled(value, &state.contexts[0]);
        }
        let mut rows = vec![];
        for (i, context) in state.contexts.iter().enumerate() {
            rows.push(pooled(batch_row(&value, i)?, context)?);
        }
        Ok(Tensor::cat(rows, 0))
    }
}

impl CamModel for OnnxModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn layers(&self) -> &[Layer] {
        &self.layers
    }

    fn default_layer(&self) -> &str {
        &self.default_layer
    }

    /// One image per pass for a graph exported for batches of one, else 8 (the images of a
    /// batch go to the threads: docs/benchmarks.md, section 11).
    fn default_batch_size(&self) -> usize {
        if self.single_image { 1 } else { 8 }
    }

    fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn output_map(&self) -> Option<[usize; 3]> {
        self.output_map
    }

    fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// Every 2-D `Conv` with a bias and every `BatchNormalization` of the graph. The legacy
    /// exporter folds a batch norm into the convolution before it: for the usual convolution
    /// without a bias the folded bias is the batch norm's, the same term; a convolution with a
    /// bias and a batch norm gives one term instead of pytorch-grad-cam's two.
    fn forward_with_bias_probes(&self, x: Tensor<4>) -> Result<(Tensor<2>, Vec<BiasProbe>)> {
        if self.single_image && x.dims()[0] > 1 {
            return Err(Error::Invalid(format!(
                "{} takes one image per pass, and FullGrad runs the batch in one: use a batch \
                 size of 1",
                self.name
            )));
        }
        let (outputs, probes) = self.graph.run_with_bias_probes(self.graph_input(x))?;
        let probes = probes
            .into_iter()
            .map(|(bias, probe)| BiasProbe { bias, probe })
            .collect();
        Ok((self.logits(outputs)?, probes))
    }

    /// Found in the graph: the layer's only reader is global average pooling, then one linear
    /// layer gives the logits (see [`Graph::linear_head`]).
    fn linear_classifier(&self, layer: usize) -> Option<Tensor<2>> {
        let cut = self.cuts.get(layer)?;
        let channel_last = match cut.layout {
            Layout::Map => false,
            Layout::ChannelLast => true,
            Layout::Tokens { .. } => return None,
        };
        let output = self.graph.output_names()[self.output];
        self.graph
            .linear_head(&cut.tensor, output, channel_last)?
            .to_tensor::<2>()
            .ok()
    }

    fn attention_blocks(&self) -> Result<Vec<String>> {
        Ok(self
            .attention()?
            .blocks()
            .iter()
            .map(|b| b.module.clone())
            .collect())
    }

    /// The blocks' token grid is the layout of their output tensors (as a layer: `--reshape`
    /// applies); the graph runs once per batch the graph takes.
    fn forward_with_attention(&self, x: Tensor<4>, blocks: &[usize]) -> Result<AttentionForward> {
        let attention = self.attention()?;
        let first = blocks
            .first()
            .and_then(|&b| attention.blocks().get(b))
            .ok_or_else(|| Error::Invalid("LeGrad needs at least one block".to_string()))?;
        let (prefix, grid) = match self.cuts.iter().find(|c| c.tensor == first.output) {
            Some(CutPoint {
                layout:
                    Layout::Tokens {
                        prefix,
                        height,
                        width,
                    },
                ..
            }) => (*prefix, (*height, *width)),
            _ => {
                return Err(Error::Invalid(format!(
                    "the output of block `{}` does not read as tokens on a patch grid (try \
                     --reshape vit)",
                    first.module
                )));
            }
        };
        let mut logits = vec![];
        let mut block_logits = vec![vec![]; blocks.len()];
        let mut leaves = vec![vec![]; blocks.len()];
        for batch in self.batches(x) {
            let pass = attention.run(self.graph_input(batch), blocks)?;
            logits.push(self.logits(pass.outputs)?.detach());
            for (k, (scores, leaf)) in pass.scores.into_iter().zip(pass.attention).enumerate() {
                block_logits[k].push(self.logits(scores)?);
                leaves[k].push(leaf);
            }
        }
        Ok(AttentionForward {
            logits: Tensor::cat(logits, 0),
            block_logits: block_logits
                .into_iter()
                .map(|l| Tensor::cat(l, 0))
                .collect(),
            attention: leaves,
            prefix,
            grid,
        })
    }

    fn alias(&self, name: &str) -> Option<&str> {
        self.names.get(name).map(|&i| self.layers[i].name.as_str())
    }

    fn suggest(&self, name: &str) -> Vec<String> {
        let close = crate::onnx::close_matches(name, self.names.keys().map(String::as_str));
        if close.is_empty() {
            let last: Vec<String> = self
                .layers
                .iter()
                .rev()
                .take(8)
                .map(|l| l.name.clone())
                .collect();
            last.into_iter()
                .rev()
                .chain(["... (`gradcam models MODEL.onnx` lists all)".into()])
                .collect()
        } else {
            close
        }
    }
}
