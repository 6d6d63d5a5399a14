//! Running the built `gradcam` binary from outside, as a user would (ripgrep's tests/util.rs),
//! and scratch directories for its outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shard variables of Slurm, Kubernetes and gradcam: a test's environment must not choose
/// a shard for it.
const SHARD_VARIABLES: [&str; 4] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "GRADCAM_SHARDS",
];

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory for one test: `<tmp>/gradcam-<test binary>-<pid>-<name>`.
pub fn scratch(name: &str) -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let binary = binary.split('-').next().unwrap_or("test");
    let dir = std::env::temp_dir().join(format!("gradcam-{binary}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `gradcam args...`, run to its end.
pub fn gradcam(args: &[&str]) -> Output {
    gradcam_env(args, &[])
}

/// `gradcam args...` with the environment variables `env` set (and no inherited shard).
pub fn gradcam_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("run gradcam")
}

/// The binary as a [`Command`] without an inherited shard, for a test that spawns it.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradcam"));
    for var in SHARD_VARIABLES {
        cmd.env_remove(var);
    }
    cmd
}

/// What the binary wrote to stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as the `&str` argument of a command line.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The test photo, `assets/cat_dog.jpg`, as an argument.
pub fn cat_dog() -> String {
    root().join("assets/cat_dog.jpg").display().to_string()
}

/// The names of the files in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
