//! `gradcam._gradcam`: the native half of the `gradcam` Python package.
//!
//! Thin glue over the library: it converts Python values, releases the GIL while the library
//! works and turns [`gradcam::Error`] into `gradcam.GradcamError`. Everything a user sees as a
//! class (`Explainer`, `Result`, the compat classes) is Python, in python/gradcam/.
//!
//! The module is made with pyo3's plain API, not its macros: the macros would turn on a feature
//! of `syn` that the library's own build does not have, and so compile burn a second time.

mod args;
mod compat;
mod convert;
mod explain;
mod model;

use std::ffi::CStr;
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyTuple};

/// A function of the module: positional arguments in, a Python value out.
type Function = fn(Python<'_>, &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>>;

/// Every function of the module, with its docstring (the Python wrappers document the API).
const FUNCTIONS: &[(&CStr, &CStr, Function)] = &[
    (
        c"load_model",
        c"load_model(name, weights, num_classes) -> model handle",
        model::load_model,
    ),
    (
        c"model_info",
        c"model_info(model) -> dict: name, layers, default layer, input",
        model::model_info,
    ),
    (
        c"methods",
        c"methods() -> list of dicts: the library's method table",
        model::methods,
    ),
    (
        c"load_image",
        c"load_image(path) -> (bytearray, height, width) of RGB pixels",
        explain::load_image,
    ),
    (
        c"explain",
        c"explain(model, images, request, batch_size) -> list of explanation dicts",
        explain::explain,
    ),
    (
        c"render",
        c"render(image, map, guided, box, input, image_weight, draw_box) -> bytearray",
        explain::render,
    ),
    (
        c"encode_png",
        c"encode_png(pixels) -> PNG bytes of an (H, W, 3) uint8 array",
        explain::encode_png,
    ),
    (
        c"run_cam",
        c"run_cam(model, input, method, layers, targets, options) -> dict",
        compat::run_cam,
    ),
    (
        c"run_dff",
        c"run_dff(model, input, layer, n_components) -> dict",
        compat::run_dff,
    ),
    (
        c"run_guided",
        c"run_guided(model, input, method, layers, targets, options) -> dict",
        compat::run_guided,
    ),
];

static mut MODULE_DEF: ffi::PyModuleDef = ffi::PyModuleDef {
    m_base: ffi::PyModuleDef_HEAD_INIT,
    m_name: c"gradcam._gradcam".as_ptr(),
    m_doc: c"The native half of the gradcam package (see `help(gradcam)`).".as_ptr(),
    m_size: -1,
    m_methods: ptr::null_mut(),
    m_slots: ptr::null_mut(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

/// The module's entry point, called by `import gradcam._gradcam`.
///
/// # Safety
/// Called by the interpreter, with the GIL held, once per process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit__gradcam() -> *mut ffi::PyObject {
    // As the `gradcam` binary does first thing: tensors of a few MB from the heap, not an
    // mmap and its page faults per pass (docs/benchmarks.md), so that a Python loop over
    // images runs at the command line's speed.
    gradcam::alloc::tune_for_tensors();
    Python::attach(|py| {
        // SAFETY: the interpreter calls this once with the GIL held; the definition is static.
        let module = unsafe { ffi::PyModule_Create(&raw mut MODULE_DEF) };
        let result = unsafe { Bound::from_owned_ptr_or_err(py, module) }
            .and_then(|m| populate(&m).map(|()| m));
        match result {
            Ok(m) => m.into_ptr(),
            Err(e) => {
                e.restore(py);
                ptr::null_mut()
            }
        }
    })
}

/// Adds the functions and `GradcamError` to the module.
fn populate(module: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = module.py();
    for &(name, doc, function) in FUNCTIONS {
        let f = PyCFunction::new_closure(
            py,
            Some(name),
            Some(doc),
            move |args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>| {
                function(args.py(), args)
            },
        )?;
        module.setattr(name.to_str().expect("ASCII names"), f)?;
    }
    module.setattr("GradcamError", convert::gradcam_error(py)?)?;
    module.setattr("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
