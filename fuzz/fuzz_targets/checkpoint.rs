//! The checkpoint loaders: bytes written as a `.pth` (zip or legacy pickle) and as a
//! `.safetensors` file, loaded into a small ResNet with `weights::load_into`, and as a `.npy`
//! array with `io::read_npy`. Each gives a value or an error, never a panic.
#![no_main]

use std::sync::OnceLock;

use burn::tensor::Device;
use gradcam::model::{ResNetConfig, resnet};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static ResNetConfig {
    static CONFIG: OnceLock<ResNetConfig> = OnceLock::new();
    CONFIG.get_or_init(|| ResNetConfig {
        name: "fuzz".into(),
        blocks: [1, 1, 1, 1],
        bottleneck: false,
        width: 8,
        num_classes: 10,
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("gradcam-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for name in ["w.pth", "w.safetensors"] {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let mut model = config().init(&Device::flex());
        let _ = gradcam::weights::load_into(&mut model, &path, resnet::KEY_REMAPS);
    }
    let npy = dir.join("a.npy");
    std::fs::write(&npy, data).unwrap();
    let _ = gradcam::io::read_npy(&npy);
});
