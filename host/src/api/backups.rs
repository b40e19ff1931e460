//! `/api/admin/backups`: take a backup now, list them, and download one as
//! a tar archive (streamed as it is written). Admin token required (the
//! caller wraps these routes).

use super::{ApiError, AppState};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/admin/backups", get(list_backups).post(create_backup))
        .route("/api/admin/backups/{name}/archive", get(archive))
}

/// `GET /api/admin/backups`: the backups under `DATA/backups`.
async fn list_backups(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let backups = state.backups.list().map_err(ApiError::internal)?;
    Ok(Json(json!({ "backups": backups })))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// A new or empty directory on the server (default `DATA/backups/{time}`).
    #[serde(default)]
    to: Option<std::path::PathBuf>,
    /// Encrypt it under the environment's master key.
    #[serde(default)]
    encrypt: bool,
}

/// `POST /api/admin/backups`: takes a backup now.
async fn create_backup(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: BackupRequest = if body.is_empty() {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the body is {{\"to\"?: DIRECTORY, \"encrypt\"?: BOOL}}: {err}"),
            )
        })?
    };
    let made = state
        .backups
        .create(request.to, request.encrypt)
        .await
        .map_err(|err| ApiError::new(StatusCode::CONFLICT, "backup_failed", format!("{err:#}")))?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Chunks of the archive in flight to the client at most.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Bytes per chunk.
const CHUNK: usize = 256 * 1024;

/// `GET /api/admin/backups/{name}/archive`: the backup directory as a tar
/// archive named after it, streamed while it is written, so a backup of any
/// size costs a few chunks of memory. An encrypted backup stays encrypted.
async fn archive(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let dir = state.backups.dir_of(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "backup_not_found",
            format!("there is no backup `{name}` (GET /api/admin/backups lists them)"),
        )
    })?;
    let (sender, mut receiver) = mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let folder = name.clone();
    tokio::task::spawn_blocking(move || {
        let writer = std::io::BufWriter::with_capacity(CHUNK, Chunks(sender.clone()));
        let mut tar = tar::Builder::new(writer);
        let written = tar
            .append_dir_all(&folder, &dir)
            .and_then(|()| tar.into_inner())
            .and_then(|mut writer| writer.flush());
        if let Err(err) = written {
            tracing::warn!(backup = %folder, error = %err, "streaming a backup archive failed");
            // The client sees the body end in an error, not a short archive.
            let _ = sender.blocking_send(Err(err));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"aura-backup-{name}.tar\""),
        )
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

/// A writer that hands what it is given to the response body.
struct Chunks(mpsc::Sender<std::io::Result<Bytes>>);

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
