//! Runs sharing an output directory (issue 15, defects 4 and 5): one run per manifest, held
//! by an OS lock that a killed run does not leave behind; a run removes the temporary files
//! of dead runs; shards still run side by side.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gradcam::batch::lock::ManifestLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradcam-lock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gradcam() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradcam"));
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "GRADCAM_SHARDS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn explain(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = gradcam();
    cmd.args(["explain", "--quiet", "--format", "json"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run gradcam")
}

/// `n` copies of the cat-and-dog image.
fn images(dir: &Path, n: usize) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..n {
        std::fs::copy(
            root().join("assets/cat_dog.jpg"),
            data.join(format!("{i:02}.jpg")),
        )
        .unwrap();
    }
    data
}

fn lines(manifest: &Path) -> usize {
    std::fs::read_to_string(manifest)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_second_run_on_a_locked_out_fails_at_once_naming_the_holder() {
    let dir = scratch("second");
    let data = images(&dir, 2);
    let out = dir.join("out");
    let held = ManifestLock::acquire(&out.join("manifest.jsonl"), false).unwrap();

    let start = Instant::now();
    let second = run(explain(&data, &out, &[]));
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30), "at once");
    assert!(
        err.contains(&format!("(PID {})", std::process::id())) && err.contains("--wait-lock"),
        "{err}"
    );
    assert!(!out.join("manifest.jsonl").exists(), "nothing written");

    // Another shard is another manifest: it runs while the lock is held.
    let shard = run(explain(&data, &out, &["--shard", "0/2"]));
    assert!(
        shard.status.success(),
        "{}",
        String::from_utf8_lossy(&shard.stderr)
    );

    // With --wait-lock, the run waits for the holder, then does the work.
    let mut waiting = explain(&data, &out, &["--wait-lock"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(waiting.try_wait().unwrap().is_none(), "still waiting");
    drop(held);
    let waited = waiting.wait_with_output().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(lines(&out.join("manifest.jsonl")), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_run_leaves_no_lock_and_its_temporary_files_are_removed() {
    let dir = scratch("killed");
    let data = images(&dir, 40);
    let out = dir.join("out");
    let mut child = explain(&data, &out, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once it has started writing (its lock file and first manifest lines exist).
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines(&out.join("manifest.jsonl")) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = child.id();
    // What `kill -9` in the middle of `write_atomic` leaves behind.
    let leftovers = [
        out.join(format!(".00.jpg.json.{killed}.tmp")),
        out.join(format!(".manifest.jsonl.{killed}.tmp")),
    ];
    for f in &leftovers {
        std::fs::write(f, b"partial").unwrap();
    }
    let live = out.join(format!(".01.jpg.json.{}.tmp", std::process::id()));
    std::fs::write(&live, b"a live process's").unwrap();

    let again = run(explain(&data, &out, &[]));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(lines(&out.join("manifest.jsonl")), 40);
    for f in &leftovers {
        assert!(!f.exists(), "{} removed", f.display());
    }
    assert!(live.exists(), "a live process's temporary file stays");
    let _ = std::fs::remove_dir_all(&dir);
}
