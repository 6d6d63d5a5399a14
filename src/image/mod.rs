//! Image decoding, resizing and overlays (being written).
