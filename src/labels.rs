//! ImageNet-1k class names, and class lookup by index or name.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// One ImageNet class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub synset: &'static str,
    /// A short, unique-in-practice name (`tabby`).
    pub name: &'static str,
    /// WordNet's comma-separated synonyms (`tabby, tabby cat`).
    pub full_name: &'static str,
}

const TSV: &str = include_str!("../assets/imagenet1k.tsv");

/// The 1000 ImageNet classes in torchvision's order.
pub fn imagenet() -> &'static [Label] {
    static LABELS: OnceLock<Vec<Label>> = OnceLock::new();
    LABELS.get_or_init(|| {
        TSV.lines()
            .skip(1)
            .filter_map(|line| {
                let mut f = line.split('\t').skip(1);
                Some(Label {
                    synset: f.next()?,
                    name: f.next()?,
                    full_name: f.next()?,
                })
            })
            .collect()
    })
}

/// A model's class names: its own (an ONNX model's `--labels`), ImageNet's for 1000 classes,
/// else none (classes go by index).
#[derive(Debug, Clone, Copy)]
pub struct ClassNames<'a> {
    own: Option<&'a [String]>,
    count: usize,
}

impl<'a> ClassNames<'a> {
    /// The names of a model with `count` classes, `own` when it brings them.
    pub fn new(own: Option<&'a [String]>, count: usize) -> Self {
        ClassNames { own, count }
    }

    /// The number of classes.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The name of class `index` (see [`name_of`]).
    pub fn name(&self, index: usize) -> String {
        match self.own.and_then(|own| own.get(index)) {
            Some(name) => name.clone(),
            None => name_of(index, self.count),
        }
    }

    /// A class by index or name (see [`class`]); with names of its own, a name is one of
    /// them (ignoring case, `_` as a space).
    pub fn class(&self, query: &str) -> Result<usize> {
        let Some(own) = self.own else {
            return class(query, self.count);
        };
        if query.trim().parse::<usize>().is_ok() {
            return class(query, self.count);
        }
        let norm = |s: &str| s.trim().to_lowercase().replace('_', " ");
        own.iter()
            .position(|name| norm(name) == norm(query))
            .ok_or_else(|| {
                Error::Class(format!(
                    "no class is called `{query}`; the model's classes: {}",
                    own.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
                ))
            })
    }
}

/// A count of classes alone: ImageNet's names for 1000, else indices.
impl From<usize> for ClassNames<'static> {
    fn from(count: usize) -> Self {
        ClassNames::new(None, count)
    }
}

/// The short name of class `index`, or its number when the model is not an ImageNet one.
pub fn name_of(index: usize, num_classes: usize) -> String {
    match imagenet().get(index) {
        Some(label) if num_classes == 1000 => label.name.to_string(),
        _ => format!("class {index}"),
    }
}

/// A class given as an index (`281`), a short name (`tabby`), a synonym (`tabby cat`) or a
/// synset (`n02123045`); names ignore case and treat `_` as a space.
///
/// ```
/// assert_eq!(gradcam::labels::class("tabby", 1000).unwrap(), 281);
/// assert_eq!(gradcam::labels::class("bull_mastiff", 1000).unwrap(), 243);
/// assert!(gradcam::labels::class("1000", 1000).is_err());
/// ```
pub fn class(query: &str, num_classes: usize) -> Result<usize> {
    if let Ok(index) = query.trim().parse::<usize>() {
        if index < num_classes {
            return Ok(index);
        }
        return Err(Error::Class(format!(
            "class {index} is out of range: the model has {num_classes} classes (0..={})",
            num_classes.saturating_sub(1)
        )));
    }
    if num_classes != 1000 {
        return Err(Error::Class(format!(
            "class `{query}`: names are ImageNet's; this model has {num_classes} classes, give an index"
        )));
    }
    let norm = |s: &str| s.trim().to_lowercase().replace('_', " ");
    let q = norm(query);
    let labels = imagenet();
    if let Some(i) = labels.iter().position(|l| l.synset == q) {
        return Ok(i);
    }
    let by_name: Vec<usize> = (0..labels.len())
        .filter(|&i| norm(labels[i].name) == q)
        .collect();
    let matches = if by_name.is_empty() {
        (0..labels.len())
            .filter(|&i| labels[i].full_name.split(',').any(|s| norm(s) == q))
            .collect()
    } else {
        by_name
    };
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => {
            let close: Vec<String> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| norm(l.full_name).contains(&q))
                .take(8)
                .map(|(i, l)| format!("{i} {}", l.name))
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("; did you mean: {}", close.join(", "))
            };
            Err(Error::Class(format!(
                "no ImageNet class is called `{query}`{hint}"
            )))
        }
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|&i| format!("{i} ({})", labels[i].full_name))
                .collect();
            Err(Error::Class(format!(
                "`{query}` names several classes: {}; give the index",
                list.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_labels_in_torchvision_order() {
        let labels = imagenet();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[0].name, "tench");
        assert_eq!(labels[281].name, "tabby");
        assert_eq!(labels[999].synset, "n15075141");
    }

    #[test]
    fn lookup_by_index_name_synonym_and_synset() {
        assert_eq!(class("281", 1000).unwrap(), 281);
        assert_eq!(class("Tabby Cat", 1000).unwrap(), 281);
        assert_eq!(class("n02123045", 1000).unwrap(), 281);
        assert_eq!(class("bull mastiff", 1000).unwrap(), 243);
    }

    #[test]
    fn ambiguous_and_unknown_names_are_errors() {
        let err = class("crane", 1000).unwrap_err().to_string();
        assert!(
            err.contains("several classes") && err.contains("134") && err.contains("517"),
            "{err}"
        );
        let err = class("tabbycat", 1000).unwrap_err().to_string();
        assert!(err.contains("no ImageNet class"), "{err}");
        assert!(class("7", 5).is_err() && class("4", 5).is_ok());
    }
}
