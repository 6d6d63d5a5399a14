//! `POST /v1/explain`, `GET /v1/models` and `GET /v1/classes`.

use std::sync::Arc;
use std::time::Instant;

use ::image::{GrayImage, RgbImage};
use axum::Json;
use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

use super::error::ApiError;
use super::{AppState, release};
use crate::cam::{Cancel, METHODS, method_names};
use crate::explain::{ClassMap, Explainer, Prediction};
use crate::image::{RgbRows, colorize, encode_png, guided_picture, picture, resize_map};
use crate::io::npy_bytes;
use crate::labels;
use crate::localize::BBox;
use crate::model::CamModel;
use crate::request::{ExplainRequest, RequestSpec};
use crate::timefmt::ms;

/// The most maps one request may ask for (`class` values or `top_k`): each costs a backward
/// pass and its images.
pub const MAX_CLASSES: usize = 10;

/// The longest parameter a form field may hold (the image aside).
const MAX_FIELD_BYTES: usize = 4096;

/// The heat-map PNG is the map at the image's size, shrunk to fit this many pixels a side.
const HEATMAP_MAX_SIDE: u32 = 1024;

/// The parameters `POST /v1/explain` takes, from the query string or form fields.
const PARAMETERS: &[&str] = &[
    "method",
    "layer",
    "class",
    "top_k",
    "target",
    "embedding",
    "counterfactual",
    "eigen_smooth",
    "aug_smooth",
    "image_weight",
    "box",
    "box_threshold",
    "overlay",
    "heatmap",
    "map",
    "concepts",
];

/// How the normalised map (at network input size) is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapFormat {
    /// Not at all (the default; the raw per-layer maps are always returned).
    None,
    /// As JSON numbers, row-major, with its shape.
    Json,
    /// As a base64 `.npy` file (float32, C order).
    Npy,
}

/// The validated parameters of one explain request: the explanation (checked by
/// [`RequestSpec::check`], as the command line's) and what the response carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub request: ExplainRequest,
    /// Return the overlay on the original image (PNG, base64).
    pub overlay: bool,
    /// Return the heat map alone (JET colours, PNG, base64), for blending client-side.
    pub heatmap: bool,
    pub map: MapFormat,
    /// For `method=deepfeaturefactorization`: the number of concepts (default 4).
    pub concepts: Option<usize>,
}

impl Params {
    /// Parses `name=value` pairs (query string first, then form fields; for single values the
    /// last wins, `layer` and `class` accumulate and take comma lists), checked against `model`,
    /// with the decoded images of the form's `similar_to` and `mask` fields when there are.
    pub fn parse(
        pairs: &[(String, String)],
        model: &dyn CamModel,
        similar_to: Option<Arc<RgbImage>>,
        mask: Option<Arc<GrayImage>>,
    ) -> Result<Params, ApiError> {
        let mut spec = RequestSpec {
            similar_to,
            mask,
            ..RequestSpec::default()
        };
        let (mut overlay, mut heatmap, mut map) = (true, true, MapFormat::None);
        let mut concepts = None;
        for (name, value) in pairs {
            let value = value.trim();
            match name.as_str() {
                "method" => spec.method = Some(value.to_string()),
                "layer" | "layers" => spec.layers.extend(list(value)),
                "class" | "classes" => spec.classes.extend(list(value)),
                "top_k" => spec.top_k = Some(number(name, value)?),
                "target" => spec.target = Some(value.to_string()),
                "embedding" => spec.embedding = Some(value.to_string()),
                "counterfactual" => spec.counterfactual = boolean(name, value)?,
                "eigen_smooth" => spec.eigen_smooth = boolean(name, value)?,
                "aug_smooth" => spec.aug_smooth = boolean(name, value)?,
                "image_weight" => spec.image_weight = Some(number(name, value)?),
                "box" => spec.draw_box = Some(boolean(name, value)?),
                "box_threshold" => spec.box_threshold = Some(number(name, value)?),
                "overlay" => overlay = boolean(name, value)?,
                "concepts" => concepts = Some(number(name, value)?),
                "heatmap" => heatmap = boolean(name, value)?,
                "map" => {
                    map = match value {
                        "" | "none" => MapFormat::None,
                        "json" => MapFormat::Json,
                        "npy" => MapFormat::Npy,
                        _ => {
                            return Err(bad(format!(
                                "map must be none, json or npy, got `{value}`"
                            )));
                        }
                    }
                }
                "image" => {
                    return Err(bad(
                        "the image goes in the multipart field `image` or the body, not the query",
                    ));
                }
                "similar_to" | "mask" => {
                    return Err(bad(format!(
                        "`{name}` is an image: send it in the multipart field `{name}`, not the query"
                    )));
                }
                "file" => {
                    return Err(bad(
                        "unknown field `file`: send the image in the multipart field `image`",
                    ));
                }
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `{name}`; valid: {}",
                        PARAMETERS.join(", ")
                    )));
                }
            }
        }
        let request = spec.check(model.class_names(), MAX_CLASSES)?;
        request.check_layers(model)?;
        if request.method.finds_concepts() {
            super::concepts::refuse_map_options(&spec)?;
        } else if concepts.is_some() {
            return Err(bad(format!(
                "`concepts` is the number of concepts of method=deepfeaturefactorization; {} \
                 makes a map per class",
                request.method.name
            )));
        }
        Ok(Params {
            request,
            overlay,
            heatmap,
            map,
            concepts,
        })
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

/// The items of a comma list, empty ones included (`layer=` is refused by the request's
/// checks, as `--layer ''` is).
fn list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split(',').map(|s| s.trim().to_string())
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|_| bad(format!("{name} must be a number, got `{value}`")))
}

/// `true`/`1`/`yes`/`on`, or present without a value (a checkbox), or `false`/`0`/`no`/`off`.
fn boolean(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(format!("{name} must be true or false, got `{value}`"))),
    }
}

/// What a request sends: the query's pairs and the form's text fields, the image (a form's
/// `image` field, or the whole body when the request is not a form) and the form's
/// `similar_to` image.
struct Upload {
    pairs: Vec<(String, String)>,
    image: Option<Bytes>,
    similar_to: Option<Bytes>,
    mask: Option<Bytes>,
}

/// Reads an [`Upload`]. `limit` is the body limit the router enforces, for its error.
async fn read_request(request: Request, limit: usize) -> Result<Upload, ApiError> {
    let Query(mut pairs) = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|e| bad(format!("malformed query string: {}", e.body_text())))?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !multipart {
        let bytes = Bytes::from_request(request, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(limit)
            } else {
                bad("could not read the request body")
            }
        })?;
        return Ok(Upload {
            pairs,
            image: (!bytes.is_empty()).then_some(bytes),
            similar_to: None,
            mask: None,
        });
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(format!("malformed multipart form: {}", e.body_text())))?;
    let (mut image, mut similar_to, mut mask) = (None, None, None);
    let multipart_error = |e: MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(limit),
        StatusCode::BAD_REQUEST => bad(format!("malformed multipart form: {}", e.body_text())),
        _ => bad("could not read the request body"),
    };
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(slot) = match name.as_str() {
            "image" => Some(&mut image),
            "similar_to" => Some(&mut similar_to),
            "mask" => Some(&mut mask),
            _ => None,
        } {
            if slot.is_some() {
                return Err(bad(format!(
                    "one image per request: the field `{name}` is repeated"
                )));
            }
            *slot = Some(
                super::body::field_bytes(field)
                    .await
                    .map_err(multipart_error)?,
            );
        } else {
            let value = field.bytes().await.map_err(multipart_error)?;
            if value.len() > MAX_FIELD_BYTES && !PARAMETERS.contains(&name.as_str()) {
                return Err(bad(format!(
                    "unknown form field `{name}` of {} bytes: send the image in the field `image`",
                    value.len()
                )));
            }
            if value.len() > MAX_FIELD_BYTES {
                return Err(bad(format!(
                    "the form field `{name}` is longer than {MAX_FIELD_BYTES} bytes"
                )));
            }
            pairs.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    Ok(Upload {
        pairs,
        image: image.filter(|b| !b.is_empty()),
        similar_to: similar_to.filter(|b| !b.is_empty()),
        mask: mask.filter(|b| !b.is_empty()),
    })
}

/// `POST /v1/explain`.
pub(super) async fn explain(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    // The body is already in memory (read by `body::read_body` first): only complete
    // requests take a place, and at most `workers + queue` of them wait.
    let ticket = state.admit().ok_or(ApiError::Overloaded)?;
    let upload = read_request(request, state.config().max_body_bytes).await?;
    let similar_to = match &upload.similar_to {
        Some(bytes) => Some(Arc::new(crate::image::decode(
            bytes,
            state.config().max_pixels,
        )?)),
        None => None,
    };
    let mask = match &upload.mask {
        Some(bytes) => {
            let rgb = crate::image::decode(bytes, state.config().max_pixels)?;
            Some(Arc::new(::image::DynamicImage::ImageRgb8(rgb).to_luma8()))
        }
        None => None,
    };
    let params = Params::parse(&upload.pairs, state.model().as_ref(), similar_to, mask)?;
    let image = upload.image;
    let image = image.ok_or_else(|| {
        bad("no image: send it in the multipart field `image`, or as the request body (not a form)")
    })?;

    let waiting = Instant::now();
    let permit = state
        .inner
        .workers
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal)?;
    let queue = ms(waiting);
    let worker_state = state.clone();
    // Dropped with this future when the request times out: the work then stops at its next
    // pass and gives its worker back.
    let cancel = Cancel::new();
    let _cancel_on_drop = cancel.on_drop();
    let result = tokio::task::spawn_blocking(move || {
        let _held = (ticket, permit);
        let result = run(&worker_state, &params, image, &cancel);
        if result.is_err() && cancel.is_cancelled() {
            worker_state.metrics().record_cancelled();
        }
        result
    })
    .await;
    match result {
        Ok(Ok(mut body)) => {
            body.timings.queue = queue;
            body.timings.total = ms(start);
            if release::is_large(body.image.width, body.image.height) {
                release::large_json(&body)
            } else {
                Ok(Json(body).into_response())
            }
        }
        Ok(Err(e)) => Err(e),
        Err(e) => {
            eprintln!("gradcam serve: explain failed: {e}");
            Err(ApiError::Internal)
        }
    }
}

#[derive(Debug, Serialize)]
struct ExplainResponse {
    model: String,
    method: String,
    layers: Vec<String>,
    counterfactual: bool,
    image: ImageSize,
    /// Network input (height, width): the shape of `map`.
    input_size: [usize; 2],
    top5: Vec<Prediction>,
    /// One per explained class, in the order asked (or of rank for `top_k`); none for
    /// deepfeaturefactorization.
    explanations: Vec<MapOut>,
    /// deepfeaturefactorization's concepts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    concepts: Vec<super::concepts::ConceptOut>,
    /// deepfeaturefactorization's picture of every concept in its colour, with the legend.
    #[serde(skip_serializing_if = "Option::is_none")]
    combined_png: Option<Base64>,
    timings: ServeTimings,
}

#[derive(Debug, Serialize)]
struct ImageSize {
    width: u32,
    height: u32,
}

/// Milliseconds.
#[derive(Debug, Default, Serialize)]
struct ServeTimings {
    /// Reading the body is not counted; waiting for a worker is.
    queue: f64,
    decode: f64,
    forward: f64,
    backward: f64,
    postprocess: f64,
    /// Resizing, colouring and PNG-encoding the images.
    encode: f64,
    total: f64,
}

#[derive(Debug, Serialize)]
struct MapOut {
    class: Option<usize>,
    label: Option<String>,
    /// The explained score (the logit, the probability for `target=softmax`; negated for a
    /// counterfactual).
    score: f32,
    /// In original-image pixels, inclusive; null when the map is empty.
    #[serde(rename = "box")]
    bbox: Option<BBox>,
    /// The overlay on the original image, as pytorch-grad-cam's `show_cam_on_image`; for
    /// `guided-backprop` and `guided-gradcam`, their input-gradient image at the image's size
    /// (pytorch-grad-cam's `deprocess_image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    overlay_png: Option<Base64>,
    /// The map alone in JET colours, at the image's aspect (at most 1024 pixels a side); the
    /// input-gradient image for the guided methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    heatmap_png: Option<Base64>,
    /// The normalised map at network input size.
    #[serde(skip_serializing_if = "Option::is_none")]
    map: Option<MapData>,
    /// The raw signed map of each layer, at the layer's resolution.
    raw: Vec<RawMap>,
}

#[derive(Debug, Serialize)]
struct MapData {
    shape: [usize; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    npy_base64: Option<String>,
}

#[derive(Debug, Serialize)]
struct RawMap {
    layer: String,
    shape: [usize; 2],
    data: Vec<f32>,
}

/// Bytes serialised as base64 text, written straight into the JSON (no base64 copy).
#[derive(Debug)]
pub(super) struct Base64(pub(super) Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&base64::display::Base64Display::new(&self.0, &BASE64))
    }
}

/// The blocking part: decode, explain, draw and encode.
fn run(
    state: &AppState,
    p: &Params,
    bytes: Bytes,
    cancel: &Cancel,
) -> Result<ExplainResponse, ApiError> {
    let start = Instant::now();
    let image = crate::image::decode(&bytes, state.config().max_pixels)?;
    // The upload (and the form parser's copy of it) is not needed once decoded.
    let large = release::is_large(image.width(), image.height());
    if large {
        release::drop_and_release(bytes);
    } else {
        drop(bytes);
    }
    let decode = ms(start);
    if p.request.method.finds_concepts() {
        return run_concepts(state, p, &image, decode);
    }

    let mut explainer = Explainer::from_request(state.model().clone(), &p.request)?;
    explainer.cancel = cancel.clone();
    let explanation = explainer
        .explain(std::slice::from_ref(&image), &p.request.classes)?
        .pop()
        .ok_or(ApiError::Internal)?;

    let start = Instant::now();
    let explanations = explanation
        .explanations
        .iter()
        .map(|m| render(&image, explanation.input_size, m, p))
        .collect::<Result<Vec<_>, _>>()?;
    let (width, height) = image.dimensions();
    if large {
        // The photo, and what the maps, pictures and tensors of this thread left free.
        release::drop_and_release(image);
    }
    let t = explanation.timings;
    Ok(ExplainResponse {
        model: explanation.model,
        method: explanation.method,
        layers: explanation.layers,
        counterfactual: explanation.counterfactual,
        image: ImageSize { width, height },
        input_size: [explanation.input_size.0, explanation.input_size.1],
        top5: explanation.top5,
        explanations,
        concepts: Vec::new(),
        combined_png: None,
        timings: ServeTimings {
            decode,
            forward: t.forward,
            backward: t.backward,
            postprocess: t.postprocess,
            encode: ms(start),
            ..Default::default()
        },
    })
}

/// [`run`] for deepfeaturefactorization: the concepts instead of maps.
fn run_concepts(
    state: &AppState,
    p: &Params,
    image: &RgbImage,
    decode: f64,
) -> Result<ExplainResponse, ApiError> {
    let start = Instant::now();
    let answer = super::concepts::run(
        state.model().clone(),
        &p.request,
        p.concepts,
        image,
        p.overlay,
        p.map != MapFormat::None,
    )?;
    let e = answer.explanation;
    Ok(ExplainResponse {
        model: e.model,
        method: e.method.to_string(),
        layers: vec![e.layer],
        counterfactual: false,
        image: ImageSize {
            width: image.width(),
            height: image.height(),
        },
        input_size: [e.input_size.0, e.input_size.1],
        top5: e.top5,
        explanations: Vec::new(),
        concepts: answer.concepts,
        combined_png: answer.combined_png,
        timings: ServeTimings {
            decode,
            forward: e.factorize_ms,
            encode: ms(start) - e.factorize_ms,
            ..Default::default()
        },
    })
}

/// The images and arrays of one map.
fn render(
    image: &RgbImage,
    input: (usize, usize),
    m: &ClassMap,
    p: &Params,
) -> Result<MapOut, ApiError> {
    let (w, h) = image.dimensions();
    // The guided methods show their input-gradient image in place of the heat map.
    let overlay_png = if p.overlay {
        let picture = picture(
            image,
            &m.map,
            m.guided.as_deref(),
            m.bbox.as_ref(),
            input,
            p.request.image_weight,
            p.request.draw_box,
        )?
        .with_region(m.region.as_ref());
        Some(Base64(png(&picture)?))
    } else {
        None
    };
    let heatmap_png = if p.heatmap {
        let scale = (HEATMAP_MAX_SIDE as f64 / w.max(h) as f64).min(1.0);
        let hw = ((w as f64 * scale).round() as u32).max(1);
        let hh = ((h as f64 * scale).round() as u32).max(1);
        let heat = match &m.guided {
            Some(guided) => guided_picture(guided, input, hw, hh),
            None => colorize(
                &resize_map(&m.map, input, (hh as usize, hw as usize)),
                hw,
                hh,
            ),
        };
        Some(Base64(png(&heat)?))
    } else {
        None
    };
    let shape = [input.0, input.1];
    let map = match p.map {
        MapFormat::None => None,
        MapFormat::Json => Some(MapData {
            shape,
            data: Some(m.map.clone()),
            npy_base64: None,
        }),
        MapFormat::Npy => Some(MapData {
            shape,
            data: None,
            npy_base64: Some(BASE64.encode(npy_bytes(&m.map, &shape))),
        }),
    };
    Ok(MapOut {
        class: m.class,
        label: m.label.clone(),
        score: m.score,
        bbox: m.bbox,
        overlay_png,
        heatmap_png,
        map,
        raw: m
            .raw
            .iter()
            .map(|l| RawMap {
                layer: l.layer.clone(),
                shape: [l.height, l.width],
                data: l.maps.first().cloned().unwrap_or_default(),
            })
            .collect(),
    })
}

/// A failure to encode is the server's, not the request's.
pub(super) fn png(image: &impl RgbRows) -> Result<Vec<u8>, ApiError> {
    encode_png(image).map_err(|e| {
        eprintln!("gradcam serve: {e}");
        ApiError::Internal
    })
}

/// `GET /v1/models`.
pub(super) async fn models(State(state): State<AppState>) -> Json<serde_json::Value> {
    let m = state.model();
    let size = m.preprocess().size;
    let layers: Vec<_> = m
        .layers()
        .iter()
        .map(|l| serde_json::json!({ "name": l.name, "shape": l.output_shape(size) }))
        .collect();
    let c = state.config();
    Json(serde_json::json!({
        "models": [{
            "name": m.name(),
            "input_size": [size.0, size.1],
            "num_classes": m.num_classes(),
            "default_layer": m.default_layer(),
            "layers": layers,
        }],
        "methods": method_names().collect::<Vec<_>>(),
        "method_details": METHODS,
        "default_method": "gradcam",
        "parameters": PARAMETERS,
        "limits": {
            "max_body_bytes": c.max_body_bytes,
            "max_pixels": c.max_pixels,
            "timeout_s": c.timeout.as_secs_f64(),
            "workers": c.workers,
            "queue": c.queue,
            "max_classes": MAX_CLASSES,
        },
    }))
}

/// `GET /v1/classes`: index, short name and synonyms of every class.
pub(super) async fn classes(State(state): State<AppState>) -> Json<serde_json::Value> {
    let model = state.model();
    let (n, own) = (model.num_classes(), model.class_names());
    let imagenet = labels::imagenet();
    let classes: Vec<_> = (0..n)
        .map(|i| {
            let names = imagenet
                .get(i)
                .filter(|_| n == 1000 && model.labels().is_none())
                .map(|l| l.full_name);
            serde_json::json!({ "class": i, "label": own.name(i), "names": names })
        })
        .collect();
    Json(serde_json::json!({ "classes": classes }))
}
