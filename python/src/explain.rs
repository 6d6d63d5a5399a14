//! The library's high-level path: images in (files or pixel arrays), a checked
//! [`RequestSpec`], [`Explainer::explain`], and the pictures of its maps.

use std::path::PathBuf;
use std::sync::Arc;

use gradcam::explain::{ClassMap, Explainer, Explanation};
use gradcam::image::{self, MAX_PIXELS, Region, RgbImage, RgbRows};
use gradcam::localize::BBox;
use gradcam::request::RequestSpec;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rayon::prelude::*;

use crate::args::arg;
use crate::convert::{buffer, bytes, error, floats, get, image_of, model_of};

/// `load_image(path)`: the decoded RGB pixels `(bytearray, height, width)`.
pub fn load_image(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let path: PathBuf = arg(args, 0, "path")?;
    let img = py
        .detach(|| image::load(&path, MAX_PIXELS))
        .map_err(|e| error(py, e))?;
    let (w, h) = img.dimensions();
    Ok((bytes(py, img.as_raw()), h, w)
        .into_pyobject(py)?
        .into_any()
        .unbind())
}

/// The request dict of `gradcam.Explainer.explain` as the library's [`RequestSpec`].
fn request_spec(d: &Bound<'_, PyDict>) -> PyResult<RequestSpec> {
    let similar_to = picture_of(d, "similar_to")?.map(Arc::new);
    let mask = picture_of(d, "mask")?
        .map(|rgb| Arc::new(::image::DynamicImage::ImageRgb8(rgb).to_luma8()));
    Ok(RequestSpec {
        method: get(d, "method")?,
        layers: get(d, "layers")?.unwrap_or_default(),
        target: get(d, "target")?,
        similar_to,
        embedding: get(d, "embedding")?,
        mask,
        classes: get(d, "classes")?.unwrap_or_default(),
        top_k: get(d, "top_k")?,
        counterfactual: get(d, "counterfactual")?.unwrap_or(false),
        eigen_smooth: get(d, "eigen_smooth")?.unwrap_or(false),
        aug_smooth: get(d, "aug_smooth")?.unwrap_or(false),
        image_weight: get(d, "image_weight")?,
        box_threshold: get(d, "box_threshold")?,
        draw_box: get(d, "draw_box")?,
    })
}

/// The request's image under `key` (a path, decoded here, or an (H, W, 3) uint8 array), if any.
fn picture_of(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Option<RgbImage>> {
    let Some(item) = d.get_item(key)?.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if item.is_instance_of::<PyString>() {
        let path: PathBuf = item.extract()?;
        image::load(&path, MAX_PIXELS)
            .map(Some)
            .map_err(|e| error(d.py(), e))
    } else {
        image_of(&item).map(Some)
    }
}

/// An image given as a path (decoded later, without the GIL) or as pixels.
enum Input {
    Path(PathBuf),
    Pixels(RgbImage),
}

/// The explanations, and each image with whether it came from a file.
type Explained = (Vec<Explanation>, Vec<(RgbImage, bool)>);

/// `explain(model, images, request, batch_size)`: one dict per image (see [`explanation`]).
/// `images` are paths or `(H, W, 3)` uint8 arrays. With the GIL released, the files are
/// decoded in parallel, then explained `batch_size` at a time.
pub fn explain(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let model = model_of(&args.get_item(0)?)?;
    let items = args.get_item(1)?;
    let inputs: Vec<Input> = items
        .try_iter()?
        .map(|item| {
            let item = item?;
            if item.is_instance_of::<PyString>() {
                Ok(Input::Path(item.extract()?))
            } else {
                image_of(&item).map(Input::Pixels)
            }
        })
        .collect::<PyResult<_>>()?;
    let spec = request_spec(args.get_item(2)?.cast::<PyDict>()?)?;
    let batch_size = arg::<usize>(args, 3, "batch_size")?.max(1);
    let num_classes = model.num_classes();
    let work = || -> gradcam::Result<Explained> {
        let request = spec.check(num_classes, num_classes)?;
        let explainer = Explainer::from_request(model, &request)?;
        let images: Vec<(RgbImage, bool)> = inputs
            .into_par_iter()
            .map(|input| match input {
                Input::Path(p) => image::load(&p, MAX_PIXELS).map(|img| (img, true)),
                Input::Pixels(img) => Ok((img, false)),
            })
            .collect::<gradcam::Result<_>>()?;
        let (photos, from_file): (Vec<RgbImage>, Vec<bool>) = images.into_iter().unzip();
        let mut explanations = Vec::with_capacity(photos.len());
        for batch in photos.chunks(batch_size) {
            explanations.extend(explainer.explain(batch, &request.classes)?);
        }
        Ok((explanations, photos.into_iter().zip(from_file).collect()))
    };
    let (explanations, images) = py.detach(work).map_err(|e| error(py, e))?;
    let list = PyList::empty(py);
    for (e, (img, from_file)) in explanations.iter().zip(&images) {
        // The photo goes back only when Python does not have it (it came from a file).
        list.append(explanation(py, e, from_file.then_some(img))?)?;
    }
    Ok(list.into_any().unbind())
}

/// One image's explanation as a dict; `image`, the decoded photo when it came from a file.
fn explanation<'py>(
    py: Python<'py>,
    e: &Explanation,
    image: Option<&RgbImage>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("model", &e.model)?;
    d.set_item("method", &e.method)?;
    d.set_item("layers", &e.layers)?;
    d.set_item("counterfactual", e.counterfactual)?;
    d.set_item("image_size", e.image_size)?;
    d.set_item("input_size", e.input_size)?;
    let top5: Vec<(usize, String, f32)> = e
        .top5
        .iter()
        .map(|p| (p.class, p.label.clone(), p.probability))
        .collect();
    d.set_item("top5", top5)?;
    let timings = PyDict::new(py);
    timings.set_item("forward", e.timings.forward)?;
    timings.set_item("backward", e.timings.backward)?;
    timings.set_item("postprocess", e.timings.postprocess)?;
    d.set_item("timings", timings)?;
    let maps = PyList::empty(py);
    for m in &e.explanations {
        maps.append(class_map(py, m)?)?;
    }
    d.set_item("explanations", maps)?;
    match image {
        Some(img) => d.set_item("image", bytes(py, img.as_raw()))?,
        None => d.set_item("image", py.None())?,
    }
    Ok(d)
}

/// One map of one image as a dict.
fn class_map<'py>(py: Python<'py>, m: &ClassMap) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("class", m.class)?;
    d.set_item("label", &m.label)?;
    d.set_item("score", m.score)?;
    d.set_item("box", m.bbox.map(|b| (b.x1, b.y1, b.x2, b.y2)))?;
    d.set_item("map", floats(py, &m.map)?)?;
    let raw = PyList::empty(py);
    for l in &m.raw {
        raw.append((&l.layer, l.height, l.width, floats(py, &l.maps.concat())?))?;
    }
    d.set_item("raw", raw)?;
    match &m.guided {
        Some(g) => d.set_item("guided", floats(py, g)?)?,
        None => d.set_item("guided", py.None())?,
    }
    // A segmentation map's region: (width, height, one byte per pixel, 1 inside).
    let region = m.region.as_ref().map(|r| {
        let inside: Vec<u8> = r.inside.iter().map(|&i| u8::from(i)).collect();
        (r.width, r.height, bytes(py, &inside))
    });
    d.set_item("region", region)?;
    Ok(d)
}

/// A region from its `(width, height, bytes)` (see [`class_map`]), checked.
fn region_of(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Region>> {
    if value.is_none() {
        return Ok(None);
    }
    let (width, height, inside): (usize, usize, Bound<'_, PyAny>) = value.extract()?;
    let (inside, _) = buffer::<u8>(&inside, "region must be uint8")?;
    if width == 0 || height == 0 || inside.len() != width * height {
        return Err(error(
            py,
            gradcam::Error::Invalid(format!(
                "a region of {width}x{height} needs {} values, got {}",
                width * height,
                inside.len()
            )),
        ));
    }
    Ok(Some(Region {
        width,
        height,
        inside: inside.into_iter().map(|v| v != 0).collect(),
    }))
}

/// `render(image, map, guided, box, input, image_weight, draw_box, region)`: the picture of one
/// map on its photo (an `(H, W, 3)` uint8 array), as `gradcam explain` writes it, with a
/// segmentation map's region outlined: `(H, W, 3)` bytes.
pub fn render(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let photo = image_of(&args.get_item(0)?)?;
    let (map, _) = buffer::<f32>(&args.get_item(1)?, "map")?;
    let guided = args.get_item(2)?;
    let guided = if guided.is_none() {
        None
    } else {
        Some(buffer::<f32>(&guided, "guided")?.0)
    };
    let bbox = arg::<Option<(u32, u32, u32, u32)>>(args, 3, "box")?.map(|(x1, y1, x2, y2)| BBox {
        x1,
        y1,
        x2,
        y2,
    });
    let input: (usize, usize) = arg(args, 4, "input")?;
    let image_weight: f32 = arg(args, 5, "image_weight")?;
    let draw_box: bool = arg(args, 6, "draw_box")?;
    let region = match args.get_item(7) {
        Ok(value) => region_of(py, &value)?,
        Err(_) => None,
    };
    let pixels = input.0 * input.1;
    if guided.as_ref().is_some_and(|g| g.len() != 3 * pixels) {
        return Err(error(
            py,
            gradcam::Error::Invalid(format!(
                "a guided image must have {} values for an input of {}x{}",
                3 * pixels,
                input.0,
                input.1
            )),
        ));
    }
    if map.len() != pixels {
        return Err(error(
            py,
            gradcam::Error::Invalid(format!(
                "a map of {} values for an input of {}x{}",
                map.len(),
                input.0,
                input.1
            )),
        ));
    }
    let pixels = py
        .detach(|| {
            image::picture(
                &photo,
                &map,
                guided.as_deref(),
                bbox.as_ref(),
                input,
                image_weight,
                draw_box,
            )
            .map(|p| p.with_region(region.as_ref()).to_image().into_raw())
        })
        .map_err(|e| error(py, e))?;
    Ok(bytes(py, &pixels).into_any().unbind())
}

/// `encode_png(pixels)`: an `(H, W, 3)` uint8 array as PNG bytes.
pub fn encode_png(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let img = image_of(&args.get_item(0)?)?;
    let png = image::encode_png(&img).map_err(|e| error(py, e))?;
    Ok(PyBytes::new(py, &png).into_any().unbind())
}
