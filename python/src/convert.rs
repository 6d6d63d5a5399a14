//! Values across the boundary: Python buffers (numpy arrays) in, `bytearray`s out (which
//! `numpy.frombuffer` views without a copy), library errors as `gradcam.GradcamError`.

use std::sync::Arc;

use gradcam::image::RgbImage;
use gradcam::model::CamModel;
use pyo3::buffer::{Element, PyBuffer};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyCapsule, PyDict, PyType};

/// The capsule name of a loaded model.
const MODEL: &std::ffi::CStr = c"gradcam.model";

/// `gradcam.GradcamError`, a `ValueError`: every library error arrives as one, with its message.
pub fn gradcam_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.get_or_try_init(py, || {
        PyErr::new_type(
            py,
            c"gradcam.GradcamError",
            Some(c"An error of the gradcam library: bad image, unknown layer, class out of range, ..."),
            Some(&py.get_type::<PyValueError>()),
            None,
        )
    })
    .map(|t| t.bind(py))
}

/// The library's error as a Python exception carrying its message.
pub fn error(py: Python<'_>, e: gradcam::Error) -> PyErr {
    match gradcam_error(py) {
        Ok(t) => PyErr::from_type(t.clone(), e.to_string()),
        Err(err) => err,
    }
}

/// A loaded model in a capsule: shared by every explanation of one `gradcam.Explainer`.
pub fn model_capsule(py: Python<'_>, model: Arc<dyn CamModel>) -> PyResult<Py<PyAny>> {
    Ok(PyCapsule::new_with_value(py, model, MODEL)?
        .into_any()
        .unbind())
}

/// The model in a capsule made by [`model_capsule`].
pub fn model_of(capsule: &Bound<'_, PyAny>) -> PyResult<Arc<dyn CamModel>> {
    let capsule = capsule
        .cast::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("expected a model handle from load_model"))?;
    let pointer = capsule.pointer_checked(Some(MODEL))?;
    // SAFETY: a capsule named MODEL holds the Arc that `model_capsule` boxed, alive as long as
    // the capsule, which `capsule` borrows.
    Ok(unsafe { pointer.cast::<Arc<dyn CamModel>>().as_ref() }.clone())
}

/// A C-contiguous buffer of `T` (a numpy array) copied out, with its shape.
pub fn buffer<T: Element + Copy>(
    obj: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<(Vec<T>, Vec<usize>)> {
    let buf = PyBuffer::<T>::get(obj).map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))?;
    Ok((buf.to_vec(obj.py())?, buf.shape().to_vec()))
}

/// An `(H, W, 3)` uint8 array as an image.
pub fn image_of(obj: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    let (pixels, shape) = buffer::<u8>(obj, "an image array must be uint8")?;
    match shape[..] {
        [h, w, 3] if h > 0 && w > 0 => RgbImage::from_raw(w as u32, h as u32, pixels)
            .ok_or_else(|| PyValueError::new_err("image array too large")),
        _ => Err(error(
            obj.py(),
            gradcam::Error::Invalid(format!(
                "an image array must have shape (height, width, 3), got {shape:?}"
            )),
        )),
    }
}

/// `f32` values as the bytes of a `bytearray` (native byte order).
pub fn floats<'py>(py: Python<'py>, values: &[f32]) -> PyResult<Bound<'py, PyByteArray>> {
    PyByteArray::new_with(py, values.len() * 4, |bytes| {
        for (chunk, v) in bytes.chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        Ok(())
    })
}

/// Pixels as a `bytearray`.
pub fn bytes<'py>(py: Python<'py>, values: &[u8]) -> Bound<'py, PyByteArray> {
    PyByteArray::new(py, values)
}

/// The value of `key` in an options dict, `None` when absent or `None`.
pub fn get<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => v.extract::<T>().map(Some).map_err(|e| {
            let e: PyErr = e.into();
            PyTypeError::new_err(format!("`{key}`: {e}"))
        }),
        _ => Ok(None),
    }
}
