//! Positional arguments of the module's functions, with a message naming the one that is wrong.

use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Argument `i` (called `name` in the message) of `args`, converted to `T`.
pub fn arg<'py, T: FromPyObjectOwned<'py>>(
    args: &Bound<'py, PyTuple>,
    i: usize,
    name: &str,
) -> PyResult<T> {
    let value = args
        .get_item(i)
        .map_err(|_| PyTypeError::new_err(format!("missing argument {i} (`{name}`)")))?;
    value.extract::<T>().map_err(|e| {
        let e: PyErr = e.into();
        PyTypeError::new_err(format!("argument `{name}`: {e}"))
    })
}
