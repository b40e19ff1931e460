//! Which objects a record may name in its file fields: those the caller
//! could download (the bucket's view rule, or owning the object), and
//! those its own form stored. Another user's private object is refused
//! exactly like a missing one, so the answer says nothing about it.

use super::{ApiError, AppState};
use crate::db::schema::Action;
use crate::db::values::FieldError;
use crate::db::{Caller, DbError};
use crate::storage::{Storage, StorageError};
use serde_json::Value;
use std::collections::BTreeMap;

/// Checks the file keys `data` names for a record of `collection`, except
/// those in `stored` (bucket, key), which the request itself uploaded.
pub(super) async fn check(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    data: &Value,
    stored: &[(String, String)],
) -> Result<(), ApiError> {
    let Caller::User(user) = caller else {
        return Ok(());
    };
    // A missing collection is the database's to report.
    let Ok(definition) = state.db.collection(collection) else {
        return Ok(());
    };
    let user = user.as_ref().map(|u| u.id.as_str());
    for field in &definition.fields {
        let Some(bucket) = field.bucket.as_deref() else {
            continue;
        };
        let mut rules = None;
        // The value itself, or what `field+` adds to a multiple field.
        let named = [field.name.clone(), format!("{}+", field.name)];
        let keys = named
            .iter()
            .filter_map(|name| data.get(name))
            .flat_map(|value| match value {
                Value::String(key) => vec![key.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            });
        for key in keys {
            // The request's own uploads, and keys the database refuses
            // with their own reason (`invalid_key`).
            if stored.iter().any(|(b, k)| b == bucket && k == key)
                || crate::storage::names::key_problem(key).is_some()
            {
                continue;
            }
            if !readable(state, caller, user, bucket, key, &mut rules).await? {
                let error = FieldError::new(
                    "file_not_found",
                    format!("no object `{key}` in bucket `{bucket}`"),
                );
                return Err(
                    DbError::Validation(BTreeMap::from([(field.name.clone(), error)])).into(),
                );
            }
        }
    }
    Ok(())
}

/// Whether `caller` (user `user`) could download `key` of `bucket`;
/// `rules` keeps the bucket's rules once read.
async fn readable(
    state: &AppState,
    caller: &Caller,
    user: Option<&str>,
    bucket: &str,
    key: &str,
    rules: &mut Option<crate::db::Entry>,
) -> Result<bool, ApiError> {
    let object = match state.storage.head(bucket, key).await {
        Ok(object) => object,
        Err(StorageError::NoSuchKey(_) | StorageError::NoSuchBucket(_)) => return Ok(false),
        Err(other) => return Err(other.into()),
    };
    if user.is_some() && object.owner.as_deref() == user {
        return Ok(true);
    }
    let rules = match rules {
        Some(rules) => rules,
        None => rules.insert(Storage::rules(
            &state.storage.bucket(bucket).await?.settings,
        )?),
    };
    Ok(state
        .storage
        .allowed(rules, Action::View, caller, &object.facts())
        .await?)
}
