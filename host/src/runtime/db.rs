//! `aura:platform/db` for functions: a thin door onto the same database
//! service the REST API uses, limited to the collections the version's
//! grants name. With `read`/`read-write` grants calls act for the invoking
//! user, so the collection's rules apply; a `service` grant bypasses them.

use super::platform::aura::platform::db::{
    self as wit, Action, BatchError, Error, Host, ListOptions, Op,
};
use super::state::InvocationState;
use crate::db::{BatchOp, Caller, Database, DbError, ListQuery, ReadQuery};
use crate::grants::CollectionAccess;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// What a version may do with collections, compiled from its grants.
#[derive(Clone)]
pub struct DbAccess {
    pub(super) db: Arc<Database>,
    pub(super) grants: Arc<BTreeMap<String, CollectionAccess>>,
}

impl DbAccess {
    /// Whose rules apply to `collection`, or why access is denied.
    fn caller(&self, collection: &str, write: bool, invoker: &Caller) -> Result<Caller, Error> {
        let denied = |needed: &str| {
            Error::Denied(format!(
                "the function's grants do not allow {needed} `{collection}`; add                  `{collection} = \"{}\"` to `collections` under [grants] in aura.toml",
                if write { "read-write" } else { "read" }
            ))
        };
        match self.grants.get(collection) {
            None => Err(denied(if write { "writing" } else { "reading" })),
            Some(CollectionAccess::Read) if write => Err(denied("writing")),
            Some(CollectionAccess::Service) => Ok(Caller::Service),
            Some(_) => Ok(invoker.clone()),
        }
    }
}

fn error(err: DbError) -> Error {
    let message = err.to_string();
    match err {
        DbError::Forbidden(_) => Error::Denied(message),
        DbError::CollectionNotFound(_) | DbError::RecordNotFound(..) => Error::NotFound(message),
        DbError::Validation(fields) => Error::Invalid(format!(
            "{message}: {}",
            serde_json::to_string(&fields).unwrap_or_default()
        )),
        DbError::Query { .. } | DbError::InvalidBody(_) | DbError::InvalidSchema(_) => {
            Error::Invalid(message)
        }
        DbError::Unique(_)
        | DbError::CollectionExists(_)
        | DbError::Lossy(_)
        | DbError::InUse(..) => Error::Conflict(message),
        // The WIT has no variant of its own for these; the message says.
        DbError::Timeout(_) | DbError::Busy => Error::Internal(message),
        DbError::Internal(err) => {
            tracing::error!(error = %format!("{err:#}"), "database error in a function call");
            Error::Internal("an internal error occurred; see the server log".into())
        }
    }
}

fn json(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|err| Error::Invalid(format!("the data is not JSON: {err}")))
}

fn text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Host for InvocationState {
    async fn get(&mut self, collection: String, id: String) -> Result<String, Error> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let caller = access.caller(&collection, false, &invoker)?;
        let record = access
            .db
            .view(&caller, &collection, &id, &ReadQuery::default())
            .await
            .map_err(error)?;
        Ok(text(&record))
    }

    async fn list(&mut self, collection: String, options: ListOptions) -> Result<String, Error> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let caller = access.caller(&collection, false, &invoker)?;
        let query = ListQuery {
            filter: options.filter,
            sort: options.sort,
            page: options.page.map(|n| n.to_string()),
            per_page: options.per_page.map(|n| n.to_string()),
            cursor: options.cursor,
            skip_total: None,
            expand: options.expand,
            fields: None,
        };
        let page = access
            .db
            .list(&caller, &collection, &query)
            .await
            .map_err(error)?;
        Ok(text(&page))
    }

    async fn create(&mut self, collection: String, data: String) -> Result<String, Error> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let caller = access.caller(&collection, true, &invoker)?;
        let record = access
            .db
            .create(&caller, &collection, json(&data)?, &ReadQuery::default())
            .await
            .map_err(error)?;
        Ok(text(&record))
    }

    async fn update(
        &mut self,
        collection: String,
        id: String,
        data: String,
    ) -> Result<String, Error> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let caller = access.caller(&collection, true, &invoker)?;
        let record = access
            .db
            .update(
                &caller,
                &collection,
                &id,
                json(&data)?,
                &ReadQuery::default(),
            )
            .await
            .map_err(error)?;
        Ok(text(&record))
    }

    async fn delete(&mut self, collection: String, id: String) -> Result<(), Error> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let caller = access.caller(&collection, true, &invoker)?;
        access
            .db
            .delete(&caller, &collection, &id)
            .await
            .map_err(error)
    }

    async fn batch(&mut self, ops: Vec<Op>) -> Result<Vec<String>, BatchError> {
        let (access, invoker) = (self.db().clone(), self.invoker().clone());
        let fail = |index: usize, error: Error| BatchError {
            index: index as u32,
            error,
        };
        let mut prepared = Vec::with_capacity(ops.len());
        for (index, op) in ops.into_iter().enumerate() {
            let caller = access
                .caller(&op.collection, true, &invoker)
                .map_err(|e| fail(index, e))?;
            let data = match &op.data {
                Some(data) => json(data).map_err(|e| fail(index, e))?,
                None => Value::Object(Default::default()),
            };
            let id = || {
                op.id.clone().ok_or_else(|| {
                    fail(index, Error::Invalid("this operation needs an `id`".into()))
                })
            };
            let batch_op = match op.action {
                Action::Create => BatchOp::Create {
                    collection: op.collection.clone(),
                    data,
                },
                Action::Update => BatchOp::Update {
                    collection: op.collection.clone(),
                    id: id()?,
                    data,
                },
                Action::Delete => BatchOp::Delete {
                    collection: op.collection.clone(),
                    id: id()?,
                },
            };
            prepared.push((caller, batch_op));
        }
        let results = access
            .db
            .batch(prepared)
            .await
            .map_err(|(index, err)| fail(index, error(err)))?;
        Ok(results.iter().map(text).collect())
    }
}

/// Links `aura:platform/db`.
pub(super) fn add_to_linker(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<InvocationState, HasSelf<InvocationState>>(linker, |state| state)
}
