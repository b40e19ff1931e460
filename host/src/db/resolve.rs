//! Resolving filter and rule paths against collection schemas: fields,
//! relation paths (`author.team.name`) as correlated subqueries, and
//! request values (`@request.auth.id`, `@request.body.title`, `@now`).

use super::backend::ident;
use super::filter::{self, Bound, Dialect, Kind, Resolved, Resolver};
use super::schema::{Action, Collection, SYSTEM_FIELDS};
use super::{Catalog, Entry, Rule};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most segments in a relation path.
pub const MAX_PATH_DEPTH: usize = 6;

/// Most relation hops one filter a caller writes may take, all paths
/// together: each is a subquery per row (with the related view rule), so
/// this bounds what one request can make the database do.
pub const MAX_FILTER_HOPS: usize = 24;

/// The signed-in user a request acts for.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's email.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Whether the email is verified.
    pub verified: bool,
}

/// Who is asking, as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The admin token or a function with service access: rules do not apply.
    Service,
    /// A signed-in user, or nobody; rules apply.
    User(Option<User>),
}

impl Caller {
    /// Nobody signed in.
    pub const ANONYMOUS: Caller = Caller::User(None);
}

/// The request data rules may refer to.
#[derive(Debug, Clone, Default)]
pub struct RequestData {
    /// The signed-in user, if any.
    pub auth: Option<User>,
    /// The request body (create and update).
    pub body: Map<String, Value>,
    /// `@now`, in the stored datetime form.
    pub now: String,
}

/// Resolves paths of one collection, aliased `alias` in the statement.
pub struct PathResolver<'a> {
    catalog: &'a Catalog,
    base: &'a Collection,
    alias: &'a str,
    dialect: Dialect,
    request: &'a RequestData,
    aliases: AtomicUsize,
    /// Whether relation paths reach only records the caller may view.
    restricted: bool,
}

/// Where a relation walk stands.
enum Source {
    /// The row of the base collection.
    Row(String),
    /// One record of a collection, whose id is this SQL expression.
    Single(String),
    /// Records of a collection whose ids this query selects (one column).
    Many(String),
}

impl<'a> PathResolver<'a> {
    /// A resolver for `base`, aliased `alias`.
    pub fn new(
        catalog: &'a Catalog,
        base: &'a Collection,
        alias: &'a str,
        dialect: Dialect,
        request: &'a RequestData,
    ) -> Self {
        Self {
            catalog,
            base,
            alias,
            dialect,
            request,
            aliases: AtomicUsize::new(0),
            restricted: false,
        }
    }

    /// The same resolver for an expression the caller wrote (a filter):
    /// a relation path reaches only the related records the caller could
    /// view by querying their collection, so a filter cannot test what
    /// the related collection's view rule hides. Rules, written by the
    /// admin, are trusted as they are.
    pub fn restricted(mut self) -> Self {
        self.restricted = true;
        self
    }

    /// Narrows `source`, records of `entry`, to those its view rule shows
    /// the caller; the rule's values join `params`.
    fn visible(
        &self,
        entry: &Entry,
        source: Source,
        params: &mut Vec<Bound>,
    ) -> Result<Source, String> {
        let g = self.next_alias();
        let condition = match entry.rule(Action::View) {
            Rule::Public => return Ok(source),
            Rule::Locked => "1 = 0".to_owned(),
            Rule::Expr(expr) => {
                let resolver = PathResolver::new(
                    self.catalog,
                    &entry.definition,
                    &g,
                    self.dialect,
                    self.request,
                );
                let (text, embedded) = filter::compile_embedded(expr, &resolver, self.dialect)
                    .map_err(|err| {
                        format!(
                            "the view rule of `{}` does not compile: {err}",
                            entry.definition.name
                        )
                    })?;
                let placeholders: Vec<String> = (params.len()..params.len() + embedded.len())
                    .map(filter::marker)
                    .collect();
                params.extend(embedded);
                filter::splice(&text, &placeholders)
            }
        };
        let table = ident(&entry.definition.name);
        Ok(match source {
            Source::Single(id) => Source::Single(format!(
                "(SELECT {g}.\"id\" FROM {table} {g} WHERE {g}.\"id\" = {id} AND {condition})"
            )),
            Source::Many(ids) => Source::Many(format!(
                "SELECT {g}.\"id\" FROM {table} {g} WHERE {g}.\"id\" IN ({ids}) AND {condition}"
            )),
            Source::Row(_) => unreachable!("a relation leads to related records"),
        })
    }

    fn next_alias(&self) -> String {
        let n = self.aliases.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}_{n}", self.alias)
    }

    fn request_value(&self, path: &str) -> Result<Resolved, String> {
        let auth = self.request.auth.as_ref();
        let value = match path {
            "@now" => Value::String(self.request.now.clone()),
            "@request.auth.id" => auth.map_or(Value::Null, |u| u.id.clone().into()),
            "@request.auth.email" => auth.map_or(Value::Null, |u| u.email.clone().into()),
            "@request.auth.roles" => auth.map_or(Value::Array(vec![]), |u| u.roles.clone().into()),
            "@request.auth.verified" => Value::Bool(auth.is_some_and(|u| u.verified)),
            _ => match path.strip_prefix("@request.body.") {
                Some(name) if self.base.field(name).is_some() || name == "id" => {
                    self.request.body.get(name).cloned().unwrap_or(Value::Null)
                }
                Some(name) => return Err(format!("unknown field `{name}` in `{path}`")),
                None => return Err(format!("unknown request value `{path}`")),
            },
        };
        Ok(Resolved::Value(value))
    }

    /// One column of the elements of a JSON array expression.
    fn elements(&self, array: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("SELECT value FROM json_each({array})"),
            Dialect::Postgres => format!("SELECT jsonb_array_elements_text({array})"),
        }
    }
}

impl Resolver for PathResolver<'_> {
    fn resolve(&self, path: &str) -> Result<Resolved, String> {
        if path.starts_with('@') {
            return self.request_value(path);
        }
        let segments: Vec<&str> = path.split('.').collect();
        if segments.len() > MAX_PATH_DEPTH {
            return Err(format!("`{path}` is deeper than {MAX_PATH_DEPTH} fields"));
        }
        let mut collection = self.base;
        let mut source = Source::Row(self.alias.to_owned());
        let mut params = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let field = collection.field(segment);
            let (kind, multi) = match field {
                _ if SYSTEM_FIELDS.contains(segment) => (Kind::Text, false),
                None => {
                    return Err(if i == 0 {
                        format!("unknown field `{segment}`")
                    } else {
                        format!("unknown field `{segment}` in `{path}`")
                    });
                }
                Some(field) => field.filter_kind().ok_or_else(|| {
                    format!("`{segment}` holds JSON, which filters cannot compare")
                })?,
            };
            let column = ident(segment);
            let table = ident(&collection.name);
            if last {
                return Ok(match source {
                    Source::Row(alias) => Resolved::Column {
                        sql: format!("{alias}.{column}"),
                        kind,
                        multi,
                        params,
                    },
                    Source::Single(id) => {
                        let a = self.next_alias();
                        Resolved::Column {
                            sql: format!(
                                "(SELECT {a}.{column} FROM {table} {a} WHERE {a}.\"id\" = {id})"
                            ),
                            kind,
                            multi,
                            params,
                        }
                    }
                    Source::Many(ids) => {
                        let a = self.next_alias();
                        let q = self.next_alias();
                        let values = match (self.dialect, multi) {
                            (_, false) => format!(
                                "SELECT {a}.{column} AS v FROM {table} {a} WHERE {a}.\"id\" IN ({ids})"
                            ),
                            (Dialect::Sqlite, true) => format!(
                                "SELECT e.value AS v FROM {table} {a}, json_each({a}.{column}) e WHERE {a}.\"id\" IN ({ids})"
                            ),
                            (Dialect::Postgres, true) => format!(
                                "SELECT jsonb_array_elements({a}.{column}) AS v FROM {table} {a} WHERE {a}.\"id\" IN ({ids})"
                            ),
                        };
                        let sql = match self.dialect {
                            Dialect::Sqlite => format!(
                                "(SELECT json_group_array(v) FROM ({values}) {q} WHERE v IS NOT NULL)"
                            ),
                            Dialect::Postgres => format!(
                                "(SELECT COALESCE(jsonb_agg(v), '[]'::jsonb) FROM ({values}) {q} WHERE v IS NOT NULL)"
                            ),
                        };
                        Resolved::Column {
                            sql,
                            kind,
                            multi: true,
                            params,
                        }
                    }
                });
            }
            let Some(field) = field.filter(|f| f.collection.is_some()) else {
                return Err(format!("`{segment}` in `{path}` is not a relation"));
            };
            let target = field.collection.as_deref().unwrap_or_default();
            let next = self
                .catalog
                .get(target)
                .ok_or_else(|| format!("`{segment}` relates to a missing collection"))?;
            source = match source {
                Source::Row(alias) if !multi => Source::Single(format!("{alias}.{column}")),
                Source::Row(alias) => Source::Many(self.elements(&format!("{alias}.{column}"))),
                Source::Single(id) => {
                    let a = self.next_alias();
                    let value =
                        format!("(SELECT {a}.{column} FROM {table} {a} WHERE {a}.\"id\" = {id})");
                    if multi {
                        Source::Many(self.elements(&value))
                    } else {
                        Source::Single(value)
                    }
                }
                Source::Many(ids) => {
                    let a = self.next_alias();
                    Source::Many(match (self.dialect, multi) {
                        (_, false) => format!(
                            "SELECT {a}.{column} FROM {table} {a} WHERE {a}.\"id\" IN ({ids})"
                        ),
                        (Dialect::Sqlite, true) => format!(
                            "SELECT e.value FROM {table} {a}, json_each({a}.{column}) e WHERE {a}.\"id\" IN ({ids})"
                        ),
                        (Dialect::Postgres, true) => format!(
                            "SELECT jsonb_array_elements_text({a}.{column}) FROM {table} {a} WHERE {a}.\"id\" IN ({ids})"
                        ),
                    })
                }
            };
            if self.restricted {
                source = self.visible(next, source, &mut params)?;
            }
            collection = &next.definition;
        }
        unreachable!("a path has at least one segment")
    }
}
