//! Localization boxes from maps (being written).
