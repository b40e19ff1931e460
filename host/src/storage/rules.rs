//! Per-bucket rules for apps (REST), in the collections' rule language: a
//! bucket's rules are those of a standalone definition whose fields are an
//! object's (`key`, `size`, `content_type`, `owner` relating to `users`),
//! evaluated by the database like any record's.

use super::{BucketSettings, Object, Result, Storage, StorageError};
use crate::db::schema::{Action, Collection};
use crate::db::{Caller, Entry};
use serde_json::{Value, json};

fn definition(settings: &BucketSettings) -> Collection {
    let mut definition: Collection = serde_json::from_value(json!({
        "name": "objects",
        "fields": [
            {"name": "key", "type": "text"},
            {"name": "size", "type": "number"},
            {"name": "content_type", "type": "text"},
            {"name": "owner", "type": "relation", "collection": "users"},
        ],
    }))
    .expect("the object definition");
    definition.list_rule.clone_from(&settings.list_rule);
    definition.view_rule.clone_from(&settings.view_rule);
    definition.create_rule.clone_from(&settings.create_rule);
    definition.update_rule.clone_from(&settings.update_rule);
    definition.delete_rule.clone_from(&settings.delete_rule);
    definition
}

/// An object as rules see it.
pub fn facts(
    key: &str,
    size: Option<u64>,
    content_type: Option<&str>,
    owner: Option<&str>,
) -> Value {
    json!({
        "id": key,
        "key": key,
        "size": size,
        "content_type": content_type,
        "owner": owner,
    })
}

impl Object {
    /// This object as rules see it.
    pub fn facts(&self) -> Value {
        facts(
            &self.key,
            Some(self.size),
            self.content_type.as_deref(),
            self.owner.as_deref(),
        )
    }
}

impl Storage {
    /// The parsed rules of a bucket's settings, or why they are refused.
    /// Parse them once per request and pass them to [`Storage::allowed`].
    pub fn rules(settings: &BucketSettings) -> Result<Entry> {
        Entry::new(definition(settings)).map_err(StorageError::InvalidRule)
    }

    /// Checks that a bucket's rules parse and name only an object's fields.
    pub(super) fn check_rules(&self, settings: &BucketSettings) -> Result<()> {
        let entry = Self::rules(settings)?;
        match self.records.rule_problem(&entry) {
            Some((rule, problem)) => Err(StorageError::InvalidRule(
                [(rule.to_owned(), problem)].into_iter().collect(),
            )),
            None => Ok(()),
        }
    }

    /// Whether a bucket's rule of `action` (`rules`, from [`Storage::rules`])
    /// lets `caller` act on the object described by `facts`.
    pub async fn allowed(
        &self,
        rules: &Entry,
        action: Action,
        caller: &Caller,
        facts: &Value,
    ) -> Result<bool> {
        self.records
            .rule_holds(rules, action, caller, facts, None)
            .await
            .map_err(|err| StorageError::Internal(anyhow::anyhow!("{err}")))
    }
}
