//! Error messages that used to mislead (issue 15, defect 8), as users see them: from the
//! binary, and from the server's router.

use std::process::Command;

fn gradcam(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradcam"))
        .args(args)
        .output()
        .expect("run gradcam");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn weights_that_are_a_directory_say_so() {
    let dir = std::env::temp_dir();
    let cat = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/cat_dog.jpg");
    let out = dir.join(format!("gradcam-messages-{}", std::process::id()));
    let (code, err) = gradcam(&[
        "explain",
        cat,
        "--model",
        "resnet18",
        "--weights",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("is a directory, not a checkpoint file"),
        "{err}"
    );
    assert!(!err.contains("no such file"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_form_field_other_than_image_asks_for_image() {
    use axum::body::Body;
    use tower::ServiceExt;
    let model = std::sync::Arc::from(common::small_model("resnet_small"));
    let app = gradcam::serve::app(gradcam::serve::AppState::from_shared(
        model,
        gradcam::serve::Config::default(),
    ));
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.jpg\"\r\n\r\n"
    )
    .into_bytes();
    body.extend(include_bytes!("../assets/cat_dog.jpg"));
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let request = axum::http::Request::post("/v1/explain")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 400);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("unknown form field `file`") && text.contains("the field `image`"),
        "{text}"
    );
}

mod common;

#[test]
fn merge_does_not_call_a_shard_that_had_no_images_missing() {
    let dir = std::env::temp_dir().join(format!("gradcam-merge-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/cat_dog.jpg"),
        data.join("a.jpg"),
    )
    .unwrap();
    let out = dir.join("out");
    // One image, two shards: one of them has nothing to do.
    for shard in ["0/2", "1/2"] {
        let (code, err) = gradcam(&[
            "explain",
            "--quiet",
            "--format",
            "json",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--shard",
            shard,
        ]);
        assert_eq!(code, Some(0), "{err}");
    }
    let merged = out.join("manifest.jsonl");
    let (code, err) = gradcam(&[
        "merge",
        out.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("missing"), "{err}");
    assert_eq!(std::fs::read_to_string(&merged).unwrap().lines().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
