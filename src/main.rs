//! The `gradcam` command: a thin layer over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    gradcam::alloc::tune_for_tensors();
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gradcam: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
