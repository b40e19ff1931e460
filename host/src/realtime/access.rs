//! Who may subscribe to and publish on custom channels: rules per channel
//! pattern, written in the collections' rule language.
//!
//! A rule's pattern is dot-separated segments: names, `*` (one segment),
//! a final `>` (the rest), and captures: `{room}` binds one segment as a
//! text field, `{room:rooms}` as a relation to the collection `rooms` (so
//! the rule can follow it: `room.members ?= @request.auth.id`). Rules see
//! `channel` and the captures, and `@request.auth.*`.
//!
//! A channel (or a subscription pattern) is governed by the most specific
//! rule covering it (most named segments, then longest); none means admin
//! only. A subscription with `*` where a rule captures binds the capture to
//! `*`, which is no id, user or record, so a rule that depends on it
//! refuses the wildcard. Events reaching a subscription through a wildcard
//! are checked again against their own channel's rule (see
//! `api::realtime`). Rules are read from the database at each check, so
//! every node applies a change at once.

use crate::db::backend::{Arg, text_arg};
use crate::db::schema::{Action, Collection, Storage};
use crate::db::{Caller, Database, Entry, values};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A rule as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRule {
    /// The channels it governs.
    pub pattern: String,
    /// Who may subscribe (absent: admin only; `""`: everyone).
    #[serde(default)]
    pub subscribe_rule: Option<String>,
    /// Who may publish (absent: admin only; `""`: everyone).
    #[serde(default)]
    pub publish_rule: Option<String>,
}

/// Why a rule, or an action under one, was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The pattern or a rule is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not.
    #[error("{0}")]
    Denied(String),
    /// No such rule.
    #[error("no rule has the pattern `{0}`")]
    NotFound(String),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Name(String),
    Any,
    Rest,
    Capture {
        name: String,
        collection: Option<String>,
    },
}

/// Field names rules may not capture into.
const RESERVED: [&str; 4] = ["id", "channel", "created", "updated"];

fn parse_pattern(text: &str) -> Result<Vec<Segment>, String> {
    let invalid = |why: &str| format!("invalid pattern `{text}`: {why}");
    let parts: Vec<&str> = text.split('.').collect();
    let mut segments = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let segment = match *part {
            "*" => Segment::Any,
            ">" if i == parts.len() - 1 => Segment::Rest,
            ">" => return Err(invalid("`>` must be the last segment")),
            capture if capture.starts_with('{') && capture.ends_with('}') => {
                let inner = &capture[1..capture.len() - 1];
                let (name, collection) = match inner.split_once(':') {
                    Some((name, collection)) => (name, Some(collection.to_owned())),
                    None => (inner, None),
                };
                let valid = !name.is_empty()
                    && name.len() <= 40
                    && name.starts_with(|c: char| c.is_ascii_lowercase())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid || RESERVED.contains(&name) {
                    return Err(invalid(&format!(
                        "capture `{name}`: names are a-z, 0-9, _ (starting with a letter), not id, channel, created or updated"
                    )));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Capture { name: n, .. } if n == name))
                {
                    return Err(invalid(&format!("capture `{name}` appears twice")));
                }
                Segment::Capture {
                    name: name.to_owned(),
                    collection,
                }
            }
            name => {
                super::validate_channel(name).map_err(|_| {
                    invalid("segments are names, `*`, a final `>`, or captures `{name}` / `{name:collection}`")
                })?;
                Segment::Name(name.to_owned())
            }
        };
        segments.push(segment);
    }
    Ok(segments)
}

struct Parsed {
    rule: ChannelRule,
    segments: Vec<Segment>,
}

impl Parsed {
    fn new(rule: ChannelRule) -> Result<Self, String> {
        Ok(Self {
            segments: parse_pattern(&rule.pattern)?,
            rule,
        })
    }

    /// More named segments first, then longer patterns.
    fn specificity(&self) -> (usize, usize) {
        let names = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Name(_)))
            .count();
        (names, self.segments.len())
    }

    /// The captures when this rule covers every channel `wanted` (a
    /// channel or a subscription pattern) names; none when it does not.
    fn covers(&self, wanted: &[&str]) -> Option<Map<String, Value>> {
        let mut captures = Map::new();
        for (i, segment) in self.segments.iter().enumerate() {
            if *segment == Segment::Rest {
                return (wanted.len() > i).then_some(captures);
            }
            let part = *wanted.get(i)?;
            match segment {
                Segment::Name(name) if part == name => {}
                Segment::Any if part != ">" => {}
                Segment::Capture { name, .. } if part != ">" => {
                    captures.insert(name.clone(), json!(part));
                }
                _ => return None,
            }
        }
        (wanted.len() == self.segments.len()).then_some(captures)
    }

    /// The rule as a standalone definition: `channel` and the captures.
    fn entry(&self) -> Result<Entry, String> {
        let mut fields = vec![json!({"name": "channel", "type": "text"})];
        for segment in &self.segments {
            if let Segment::Capture { name, collection } = segment {
                fields.push(match collection {
                    Some(collection) => {
                        json!({"name": name, "type": "relation", "collection": collection})
                    }
                    None => json!({"name": name, "type": "text"}),
                });
            }
        }
        let mut definition: Collection =
            serde_json::from_value(json!({ "name": "channels", "fields": fields }))
                .map_err(|e| e.to_string())?;
        definition.view_rule.clone_from(&self.rule.subscribe_rule);
        definition.create_rule.clone_from(&self.rule.publish_rule);
        Entry::new(definition).map_err(|problems| {
            problems
                .iter()
                .map(|(path, problem)| {
                    let path = path
                        .replace("viewRule", "subscribeRule")
                        .replace("createRule", "publishRule");
                    format!("{path}: {problem}")
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// What a caller wants to do on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Subscribe (a channel or a pattern).
    Subscribe,
    /// Publish (a channel).
    Publish,
}

async fn load(db: &Database) -> anyhow::Result<Vec<ChannelRule>> {
    let select = db.backend().statement(
        "SELECT pattern, subscribe_rule, publish_rule FROM _aura_channel_rules ORDER BY pattern",
        [],
    );
    Ok(db
        .backend()
        .fetch(&select, &[Storage::Text; 3])
        .await?
        .into_iter()
        .map(|row| ChannelRule {
            pattern: row[0].as_str().unwrap_or_default().to_owned(),
            subscribe_rule: row[1].as_str().map(str::to_owned),
            publish_rule: row[2].as_str().map(str::to_owned),
        })
        .collect())
}

/// `GET /api/admin/realtime/rules`.
pub async fn list(db: &Database) -> Result<Vec<ChannelRule>, AccessError> {
    Ok(load(db).await?)
}

/// `PUT /api/admin/realtime/rules/{pattern}`: creates or replaces a rule
/// after checking its pattern, its captures' collections and its rules.
pub async fn put(db: &Database, rule: ChannelRule) -> Result<ChannelRule, AccessError> {
    let parsed = Parsed::new(rule.clone()).map_err(AccessError::Invalid)?;
    if parsed
        .segments
        .first()
        .is_some_and(|s| matches!(s, Segment::Name(n) if n == "collections" || n == "presence"))
    {
        return Err(AccessError::Invalid(format!(
            "`{}`: record-change channels follow their collection's view rule, and presence channels their channel's rule",
            rule.pattern
        )));
    }
    for segment in &parsed.segments {
        if let Segment::Capture {
            collection: Some(collection),
            name,
        } = segment
            && db.collection(collection).is_err()
        {
            return Err(AccessError::Invalid(format!(
                "capture `{name}` relates to `{collection}`, which is not a collection"
            )));
        }
    }
    let entry = parsed.entry().map_err(AccessError::Invalid)?;
    if let Some((which, problem)) = db.rule_problem(&entry) {
        let which = match which {
            "viewRule" => "subscribeRule",
            "createRule" => "publishRule",
            other => other,
        };
        return Err(AccessError::Invalid(format!("{which}: {problem}")));
    }
    let optional =
        |rule: &Option<String>| rule.as_deref().map_or(Arg::NullOf(Storage::Text), text_arg);
    db.backend()
        .run(
            "INSERT INTO _aura_channel_rules (pattern, subscribe_rule, publish_rule, updated) VALUES (?, ?, ?, ?) \
             ON CONFLICT (pattern) DO UPDATE SET subscribe_rule = excluded.subscribe_rule, \
             publish_rule = excluded.publish_rule, updated = excluded.updated",
            [
                text_arg(&rule.pattern),
                optional(&rule.subscribe_rule),
                optional(&rule.publish_rule),
                text_arg(&values::now()),
            ],
        )
        .await?;
    Ok(rule)
}

/// `DELETE /api/admin/realtime/rules/{pattern}`.
pub async fn delete(db: &Database, pattern: &str) -> Result<(), AccessError> {
    let affected = db
        .backend()
        .run(
            "DELETE FROM _aura_channel_rules WHERE pattern = ?",
            [text_arg(pattern)],
        )
        .await?;
    if affected == 0 {
        return Err(AccessError::NotFound(pattern.to_owned()));
    }
    Ok(())
}

/// Whether `caller` may subscribe to `wanted` (a channel or pattern) or
/// publish on it (a channel). Record-change channels are not governed here
/// (each of their events follows its collection's view rule); a presence
/// channel `presence.X` follows the rule of `X`.
pub async fn check(
    db: &Database,
    caller: &Caller,
    wanted: &str,
    action: Wants,
) -> Result<(), AccessError> {
    if *caller == Caller::Service {
        return Ok(());
    }
    let target = wanted
        .strip_prefix(super::PRESENCE_CHANNELS)
        .unwrap_or(wanted);
    let parts: Vec<&str> = target.split('.').collect();
    let mut rules: Vec<Parsed> = load(db)
        .await?
        .into_iter()
        .filter_map(|rule| Parsed::new(rule).ok())
        .collect();
    rules.sort_by_key(|rule| std::cmp::Reverse(rule.specificity()));
    let verb = match action {
        Wants::Subscribe => "subscribe to",
        Wants::Publish => "publish on",
    };
    let Some((rule, captures)) = rules
        .iter()
        .find_map(|rule| rule.covers(&parts).map(|captures| (rule, captures)))
    else {
        return Err(AccessError::Denied(format!(
            "no channel rule covers `{target}`: only the admin may {verb} it"
        )));
    };
    let entry = rule
        .entry()
        .map_err(|e| anyhow::anyhow!("rule `{}`: {e}", rule.rule.pattern))?;
    let mut facts = captures;
    facts.insert("id".into(), json!(target));
    facts.insert("channel".into(), json!(target));
    let action = match action {
        Wants::Subscribe => Action::View,
        Wants::Publish => Action::Create,
    };
    let allowed = db
        .rule_holds(&entry, action, caller, &Value::Object(facts), None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !allowed {
        return Err(AccessError::Denied(format!(
            "the rule of `{}` does not let you {verb} `{target}`",
            rule.rule.pattern
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(pattern: &str) -> Parsed {
        Parsed::new(ChannelRule {
            pattern: pattern.into(),
            subscribe_rule: None,
            publish_rule: None,
        })
        .unwrap()
    }

    fn covers(pattern: &str, wanted: &str) -> Option<Value> {
        parsed(pattern)
            .covers(&wanted.split('.').collect::<Vec<_>>())
            .map(Value::Object)
    }

    #[test]
    fn patterns_capture_segments_and_cover_subscriptions() {
        assert_eq!(
            covers("chat.{room}", "chat.r1"),
            Some(json!({"room": "r1"}))
        );
        assert_eq!(covers("chat.{room}", "chat.*"), Some(json!({"room": "*"})));
        assert_eq!(covers("chat.{room}", "chat.>"), None);
        assert_eq!(covers("chat.{room}", "chat.r1.typing"), None);
        assert_eq!(covers("chat.{room}", "*.r1"), None);
        assert_eq!(covers("chat.>", "chat.r1.typing"), Some(json!({})));
        assert_eq!(covers("chat.>", "chat.>"), Some(json!({})));
        assert_eq!(covers("chat.>", "chat"), None);
        assert_eq!(
            covers("user.{owner:users}.*", "user.u1.inbox"),
            Some(json!({"owner": "u1"}))
        );
        assert!(parsed("chat.r1").specificity() > parsed("chat.{room}").specificity());
        for bad in [
            "chat.{id}",
            "chat.{Room}",
            "chat.{a}.{a}",
            "chat.>.x",
            "chat..x",
            "chat.{}",
        ] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }
}
