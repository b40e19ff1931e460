//! Records written as `multipart/form-data`, as PocketBase apps send them:
//! a record and its files in one request. Text parts are field values, read
//! by the field's type; a file part is stored in its file field's bucket
//! (under the bucket's create rule, checked against the stored object) as `{collection}/{random}/{file name}`,
//! and the record holds that key. When the record is not written, the files
//! stored for it are removed again.

use super::files::store_new_part;
use super::form_values::{self, FormValues, Problem};
use super::{ApiError, AppState};
use crate::db::Caller;
use axum::extract::multipart::Multipart;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// A form read into a record body, and the objects stored for it.
pub(super) struct RecordForm {
    pub data: Value,
    stored: Vec<(String, String)>,
}

impl RecordForm {
    /// The objects stored for the record, as (bucket, key).
    pub fn stored(&self) -> &[(String, String)] {
        &self.stored
    }

    /// Removes the objects stored for a record that was not written.
    pub async fn discard(self, state: &AppState) {
        for (bucket, key) in self.stored {
            if let Err(err) = state.storage.delete(&bucket, &key).await {
                tracing::warn!(%bucket, %key, "removing a file of an unwritten record: {err:#}");
            }
        }
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        match problem {
            Problem::Invalid { message, field } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_form", message)
                    .with_details(json!({ "field": field }))
            }
            Problem::TooLarge => ApiError::payload_too_large(form_values::MAX_TEXT as u64),
        }
    }
}

/// Reads `form` for a record of `collection`, storing its files.
pub(super) async fn read(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    mut form: Multipart,
) -> Result<RecordForm, ApiError> {
    let definition = state.db.collection(collection)?;
    let fields = &definition.fields;
    let mut values = FormValues::default();
    let mut stored = Vec::new();
    let result: Result<(), ApiError> = async {
        while let Some(part) = form.next_field().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                format!("the form is not valid multipart/form-data: {e}"),
            )
        })? {
            let name = part.name().unwrap_or_default().to_owned();
            if let Some(file_name) = part.file_name().map(str::to_owned) {
                let field = FormValues::file_field(fields, collection, &name)?;
                let key = format!(
                    "{collection}/{}/{}",
                    crate::db::values::new_id(),
                    form_values::safe_name(&file_name)
                );
                let bucket_name = field.bucket.clone().unwrap_or_default();
                let bucket = state.storage.bucket(&bucket_name).await?;
                store_new_part(state, caller, &bucket, &key, part).await?;
                stored.push((bucket_name, key.clone()));
                values.add_file(fields, &name, key)?;
            } else {
                let text = part.text().await.map_err(|e| {
                    ApiError::from(Problem::Invalid {
                        message: format!("reading `{name}`: {e}"),
                        field: name.clone(),
                    })
                })?;
                values.add_text(fields, &name, &text)?;
            }
        }
        Ok(())
    }
    .await;
    let record = RecordForm {
        data: values.into_value(),
        stored,
    };
    match result {
        Ok(()) => Ok(record),
        Err(err) => {
            record.discard(state).await;
            Err(err)
        }
    }
}
