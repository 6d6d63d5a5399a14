//! A node's attributes, decoded from protobuf once at load; operators read them by name with
//! typed getters when they are built.

use super::error::{OpResult, op_bail};
use super::value::Value;
use std::collections::BTreeMap;

/// One attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    /// `f`.
    Float(f32),
    /// `i`.
    Int(i64),
    /// `s` (UTF-8; lossy for other bytes).
    String(String),
    /// `t`, decoded.
    Tensor(Box<Value>),
    /// `floats`.
    Floats(Vec<f32>),
    /// `ints`.
    Ints(Vec<i64>),
    /// `strings` (read only through `Debug`, in error messages).
    #[allow(dead_code)]
    Strings(Vec<String>),
    /// A kind the interpreter does not use (graphs, sparse tensors, types): its name.
    #[allow(dead_code)]
    Other(&'static str),
}

/// The attributes of one node, by name.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    map: BTreeMap<String, Attr>,
    /// How many outputs the node has (Split without sizes divides into that many).
    outputs: usize,
}

impl Attributes {
    /// Attributes from name-value pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, Attr)>, outputs: usize) -> Self {
        Attributes {
            map: pairs.into_iter().collect(),
            outputs,
        }
    }

    /// The node's number of outputs.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The raw attribute, if present.
    pub fn get(&self, name: &str) -> Option<&Attr> {
        self.map.get(name)
    }

    /// The names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// An integer attribute, or `default`.
    pub fn int_or(&self, name: &str, default: i64) -> OpResult<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An integer attribute, if present.
    pub fn int(&self, name: &str) -> OpResult<Option<i64>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(other) => op_bail!("attribute `{name}` should be an integer, got {other:?}"),
        }
    }

    /// A float attribute, or `default`.
    pub fn float_or(&self, name: &str, default: f32) -> OpResult<f32> {
        match self.map.get(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(other) => op_bail!("attribute `{name}` should be a float, got {other:?}"),
        }
    }

    /// A list of integers, if present.
    pub fn ints(&self, name: &str) -> OpResult<Option<Vec<i64>>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => op_bail!("attribute `{name}` should be integers, got {other:?}"),
        }
    }

    /// A string attribute, or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> OpResult<String> {
        match self.map.get(name) {
            None => Ok(default.to_string()),
            Some(Attr::String(v)) => Ok(v.clone()),
            Some(other) => op_bail!("attribute `{name}` should be a string, got {other:?}"),
        }
    }
}
