//! The pictures of a photo's concepts, as pytorch-grad-cam's DFF tutorial shows them: one
//! heat-map overlay per concept and every concept in its own colour on one picture, each with
//! a legend strip that names the concepts' top classes.

use ::image::RgbImage;

use super::ConceptExplanation;
use crate::error::Result;
use crate::image::{
    LegendEntry, concept_colors, overlay, resize_map, show_factorization, with_legend,
};

/// The pictures of one photo's concepts.
pub struct ConceptPictures {
    /// One per concept: its map's overlay (OpenCV's JET, as `show_cam_on_image`) with its label.
    pub concepts: Vec<RgbImage>,
    /// `show_factorization_on_image`'s picture, every concept's label beside its colour.
    pub combined: RgbImage,
}

/// `concept i: tabby 0.62, tiger cat 0.21`, the legend line of concept `i`.
pub fn legend_text(index: usize, label: &str) -> String {
    if label.is_empty() {
        format!("concept {index}")
    } else {
        format!("concept {index}: {label}")
    }
}

/// The pictures of `e`'s concepts on `image`, the photo it explains, at the photo's size (the
/// maps bilinearly resized), with the photo at weight `image_weight`.
pub fn concept_pictures(
    image: &RgbImage,
    e: &ConceptExplanation,
    image_weight: f32,
) -> Result<ConceptPictures> {
    let (w, h) = image.dimensions();
    let colors = concept_colors(e.concepts.len());
    let maps: Vec<Vec<f32>> = e
        .concepts
        .iter()
        .map(|c| resize_map(&c.map, e.input_size, (h as usize, w as usize)))
        .collect();
    let entries: Vec<LegendEntry> = e
        .concepts
        .iter()
        .zip(&colors)
        .map(|(c, &color)| LegendEntry {
            swatch: Some(color),
            text: legend_text(c.index, &c.label),
        })
        .collect();
    let concepts = maps
        .iter()
        .zip(&entries)
        .map(|(map, entry)| {
            Ok(with_legend(
                &overlay(image, map, image_weight)?,
                std::slice::from_ref(entry),
            ))
        })
        .collect::<Result<_>>()?;
    let combined = with_legend(
        &show_factorization(image, &maps, &colors, image_weight)?,
        &entries,
    );
    Ok(ConceptPictures { concepts, combined })
}
