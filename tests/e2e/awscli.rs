//! The S3 port driven by awscli, the client most people reach for first:
//! copies S3 to S3 over the multipart threshold (UploadPartCopy), sync both
//! ways with `--delete`, the v1 listing, standard headers, and a download
//! awscli makes in parallel ranges. awscli comes pinned from
//! `tests/awscli/requirements.txt` (`scripts/test.sh` installs it and sets
//! `AURA_TEST_AWSCLI`); without it these tests say so and pass.

use crate::support::Aura;
use serde_json::{Value, json};
use std::path::Path;

/// awscli against `aura` with a read-write key, or `None` without awscli.
struct Cli {
    aws: String,
    endpoint: String,
    env: Vec<(&'static str, String)>,
    _config: tempfile::TempDir,
}

impl Cli {
    async fn new(aura: &Aura) -> Option<Self> {
        let Ok(aws) = std::env::var("AURA_TEST_AWSCLI") else {
            eprintln!("AURA_TEST_AWSCLI is not set: the awscli tests are not run");
            return None;
        };
        let (access, secret) = crate::storage::key(aura, json!({"*": "read-write"})).await;
        let config = tempfile::tempdir().expect("temp dir");
        let file = config.path().join("config");
        // Small parts, so that a 20 MB object is copied in several.
        std::fs::write(
            &file,
            "[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n  multipart_threshold = 8MB\n  multipart_chunksize = 5MB\n  max_concurrent_requests = 4\n",
        )
        .expect("aws config");
        Some(Self {
            aws,
            endpoint: aura.s3_url.clone(),
            env: vec![
                ("AWS_ACCESS_KEY_ID", access),
                ("AWS_SECRET_ACCESS_KEY", secret),
                ("AWS_CONFIG_FILE", file.display().to_string()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ],
            _config: config,
        })
    }

    /// Runs `aws ARGS…`; panics with its output if it fails.
    async fn run(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(&self.aws)
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("running aws");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "aws {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

fn bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 253) as u8).collect()
}

/// The files under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    found.sort();
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn awscli_copies_syncs_lists_and_downloads() {
    let aura = Aura::start();
    let Some(aws) = Cli::new(&aura).await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    for bucket in ["s3://cli-a", "s3://cli-b"] {
        aws.run(&["s3", "mb", bucket]).await;
    }

    // A 20 MB object: uploaded in parts, copied S3 to S3 (UploadPartCopy
    // in parts), downloaded in parallel ranges: the same bytes each time.
    let big = bytes(20 * 1024 * 1024, 1);
    let original = work.path().join("big.bin");
    std::fs::write(&original, &big).unwrap();
    aws.run(&["s3", "cp", original.to_str().unwrap(), "s3://cli-a/big.bin"])
        .await;
    aws.run(&["s3", "cp", "s3://cli-a/big.bin", "s3://cli-b/copied.bin"])
        .await;
    aws.run(&["s3", "mv", "s3://cli-b/copied.bin", "s3://cli-b/moved.bin"])
        .await;
    let head = aws
        .json(&[
            "s3api",
            "head-object",
            "--bucket",
            "cli-b",
            "--key",
            "moved.bin",
        ])
        .await;
    assert_eq!(head["ContentLength"], 20 * 1024 * 1024, "{head}");
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-4\""),
        "copied in parts: {head}"
    );
    let downloaded = work.path().join("downloaded.bin");
    aws.run(&[
        "s3",
        "cp",
        "s3://cli-b/moved.bin",
        downloaded.to_str().unwrap(),
    ])
    .await;
    assert!(std::fs::read(&downloaded).unwrap() == big, "same bytes");
    let listed = aws
        .json(&["s3api", "list-objects", "--bucket", "cli-b"])
        .await;
    let keys: Vec<&str> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["moved.bin"], "{listed}");

    // Sync up, change locally, sync again with --delete, then down.
    let local = work.path().join("site");
    std::fs::create_dir_all(local.join("css")).unwrap();
    for (name, seed) in [("index.html", 2), ("css/app.css", 3), ("old.txt", 4)] {
        std::fs::write(local.join(name), bytes(1000 + seed, seed)).unwrap();
    }
    let local_path = local.to_str().unwrap();
    aws.run(&["s3", "sync", local_path, "s3://cli-a/site"])
        .await;
    std::fs::remove_file(local.join("old.txt")).unwrap();
    std::fs::write(local.join("new café.txt"), b"new").unwrap();
    aws.run(&["s3", "sync", local_path, "s3://cli-a/site", "--delete"])
        .await;
    let listed = aws
        .json(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "cli-a",
            "--prefix",
            "site/",
        ])
        .await;
    let keys: Vec<&str> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["site/css/app.css", "site/index.html", "site/new café.txt"]
    );
    let mirror = work.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join("stale.txt"), b"stale").unwrap();
    aws.run(&[
        "s3",
        "sync",
        "s3://cli-a/site",
        mirror.to_str().unwrap(),
        "--delete",
    ])
    .await;
    assert_eq!(
        files(&mirror),
        ["css/app.css", "index.html", "new café.txt"]
    );
    assert_eq!(
        std::fs::read(mirror.join("index.html")).unwrap(),
        std::fs::read(local.join("index.html")).unwrap()
    );

    // Standard headers given on upload come back.
    let asset = work.path().join("app.js.gz");
    std::fs::write(&asset, b"\x1f\x8b not really gzip").unwrap();
    aws.run(&[
        "s3",
        "cp",
        asset.to_str().unwrap(),
        "s3://cli-a/app.js.gz",
        "--cache-control",
        "max-age=600",
        "--content-encoding",
        "gzip",
        "--content-type",
        "application/javascript",
    ])
    .await;
    let head = aws
        .json(&[
            "s3api",
            "head-object",
            "--bucket",
            "cli-a",
            "--key",
            "app.js.gz",
        ])
        .await;
    assert_eq!(
        (&head["CacheControl"], &head["ContentEncoding"]),
        (&json!("max-age=600"), &json!("gzip")),
        "{head}"
    );
}
