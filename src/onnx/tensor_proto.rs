//! `TensorProto` (initializers, `Constant` values, tensor attributes) to a [`Value`]: floats of
//! any width become an f32 burn tensor, integers and booleans host [`Ints`].

use super::external::ExternalData;
use super::proto::{TensorProto, tensor_proto::DataLocation, tensor_proto::DataType};
use super::value::{Float, Ints, Value};

/// Decodes a tensor; `external` reads data stored outside the model file.
pub(crate) fn decode(t: &TensorProto, external: &mut ExternalData) -> Result<Value, String> {
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let raw: Option<&[u8]> = if t.data_location == DataLocation::External as i32 {
        Some(external_bytes(t, external)?)
    } else if !t.raw_data.is_empty() {
        Some(&t.raw_data)
    } else {
        None
    };
    let dtype =
        DataType::try_from(t.data_type).map_err(|_| format!("data type {}", t.data_type))?;
    let floats = |v: Vec<f32>| -> Result<Value, String> {
        Float::from_vec(v, shape.clone())
            .map(Value::Float)
            .map_err(|e| e.0)
    };
    let ints = |v: Vec<i64>| -> Result<Value, String> {
        Ints::new(v, shape.clone()).map(Value::Int).map_err(|e| e.0)
    };
    match (dtype, raw) {
        (DataType::Float, Some(raw)) => floats(le(raw, count, |b: [u8; 4]| f32::from_le_bytes(b))?),
        (DataType::Float, None) => floats(t.float_data.clone()),
        (DataType::Double, Some(raw)) => {
            floats(le(raw, count, |b: [u8; 8]| f64::from_le_bytes(b) as f32)?)
        }
        (DataType::Double, None) => floats(t.double_data.iter().map(|&v| v as f32).collect()),
        (DataType::Float16, Some(raw)) => floats(le(raw, count, |b: [u8; 2]| {
            f16_to_f32(u16::from_le_bytes(b))
        })?),
        (DataType::Float16, None) => {
            floats(t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect())
        }
        (DataType::Int64, Some(raw)) => ints(le(raw, count, i64::from_le_bytes)?),
        (DataType::Int64, None) => ints(t.int64_data.clone()),
        (DataType::Int32, Some(raw)) => {
            ints(le(raw, count, |b: [u8; 4]| i32::from_le_bytes(b) as i64)?)
        }
        (DataType::Int16, Some(raw)) => {
            ints(le(raw, count, |b: [u8; 2]| i16::from_le_bytes(b) as i64)?)
        }
        (DataType::Int8, Some(raw)) => ints(le(raw, count, |b: [u8; 1]| b[0] as i8 as i64)?),
        (DataType::Uint8 | DataType::Bool, Some(raw)) => {
            ints(le(raw, count, |b: [u8; 1]| b[0] as i64)?)
        }
        (
            DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::Uint8 | DataType::Bool,
            None,
        ) => ints(t.int32_data.iter().map(|&v| v as i64).collect()),
        (other, _) => Err(format!(
            "data type {} is not supported",
            other.as_str_name()
        )),
    }
}

/// The bytes of a tensor whose data is in another file.
fn external_bytes<'a>(t: &TensorProto, external: &'a mut ExternalData) -> Result<&'a [u8], String> {
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for entry in &t.external_data {
        let number = || {
            entry.value.parse::<u64>().map_err(|_| {
                format!(
                    "external data {} `{}` is not a number",
                    entry.key, entry.value
                )
            })
        };
        match entry.key.as_str() {
            "location" => location = Some(entry.value.clone()),
            "offset" => offset = number()?,
            "length" => length = Some(number()?),
            _ => {}
        }
    }
    let location = location.ok_or("no location")?;
    external.read(&location, offset, length)
}

/// `count` little-endian values of `N` bytes each.
fn le<const N: usize, T>(
    raw: &[u8],
    count: usize,
    f: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, String> {
    if raw.len() != count * N {
        return Err(format!(
            "{} bytes of data for {count} values of {N} bytes",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect())
}

/// IEEE half precision to single.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    }
}
