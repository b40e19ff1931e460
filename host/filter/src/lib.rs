//! The one expression language of filters (`?filter=`) and access rules.
//!
//! [`parse`] turns text into an [`Expr`]; [`compile`] turns an [`Expr`]
//! into a SQL condition for SQLite or PostgreSQL. Field paths are resolved by
//! a [`Resolver`] (the collection schema) into trusted column SQL; every value
//! — literals and request data alike — becomes a bound parameter, so no user
//! text is ever concatenated into SQL.
//!
//! Semantics follow PocketBase's rules language: `''` equals `null`;
//! operators prefixed with `?` hold if *any* value of a multi-valued operand
//! matches, unprefixed ones need *all* to; `~` is a case-insensitive
//! "contains".
//!
//! A crate of its own (no database, no runtime) so the fuzz targets under
//! `fuzz/` build in seconds.

#![deny(missing_docs)]

mod parse;

pub use parse::{Compare, Expr, MAX_COMPARISONS, MAX_LENGTH, Op, Operand, parse};

use serde_json::Value;

/// A filter or rule error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    /// Character position in the expression.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// The SQL dialect to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (`?n` placeholders, `LIKE` is case-insensitive, `json_each`).
    Sqlite,
    /// PostgreSQL (`$n` placeholders, `ILIKE`, `jsonb_array_elements_text`).
    Postgres,
}

/// The type of a column or value, as comparisons need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (also dates, emails, urls, selects).
    Text,
    /// A number.
    Number,
    /// A boolean.
    Bool,
}

/// What a path stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// A column: `sql` is trusted SQL built from the schema (quoted
    /// identifiers), never from user text. `multi` marks a JSON array column
    /// (arrays, multi-relations) of `kind` values.
    Column {
        /// The SQL expression.
        sql: String,
        /// The type of its values.
        kind: Kind,
        /// Whether it holds a JSON array.
        multi: bool,
        /// Values `sql` binds (a related collection's rule, say), each
        /// written in it as [`marker`]`(i)`.
        params: Vec<Bound>,
    },
    /// A value known before the query runs (`@request.auth.id`, `@now`),
    /// bound as a parameter; an array is multi-valued.
    Value(Value),
}

/// Resolves field paths for one collection and one request.
pub trait Resolver {
    /// What `path` stands for, or why it is unknown.
    fn resolve(&self, path: &str) -> Result<Resolved, String>;
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// SQL `NULL`.
    Null,
}

/// A value to bind, and the kind it is compared as.
pub type Bound = (Param, Option<Kind>);

/// A compiled condition and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The condition.
    pub text: String,
    /// Values for its placeholders.
    pub params: Vec<Param>,
}

/// The stand-in for the `i`-th value of an embedded condition
/// ([`compile_embedded`]), replaced by a real placeholder when the
/// condition becomes part of a statement.
pub fn marker(i: usize) -> String {
    format!("\u{1}{i}\u{1}")
}

/// Compiles `expr` into a condition to embed in a column's SQL
/// ([`Resolved::Column`]): its values are [`marker`]s, numbered from 0.
pub fn compile_embedded(
    expr: &Expr,
    resolver: &dyn Resolver,
    dialect: Dialect,
) -> Result<(String, Vec<Bound>), FilterError> {
    let mut compiler = Compiler::new(resolver, dialect, None);
    let text = compiler.expr(expr)?;
    Ok((
        text,
        compiler.params.into_iter().zip(compiler.kinds).collect(),
    ))
}

/// Replaces the [`marker`]s of `sql` in one pass: marker `i` becomes
/// `placeholders[i]`.
pub fn splice(sql: &str, placeholders: &[String]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find('\u{1}') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('\u{1}').expect("markers come in pairs");
        let index: usize = after[..end].parse().expect("a marker holds a number");
        out.push_str(&placeholders[index]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Compiles `expr` into a SQL condition.
pub fn compile(expr: &Expr, resolver: &dyn Resolver, dialect: Dialect) -> Result<Sql, FilterError> {
    compile_after(expr, resolver, dialect, 0)
}

/// Compiles `expr` into a condition that follows `earlier` parameters of
/// the same statement (PostgreSQL placeholders are numbered).
pub fn compile_after(
    expr: &Expr,
    resolver: &dyn Resolver,
    dialect: Dialect,
    earlier: usize,
) -> Result<Sql, FilterError> {
    let mut compiler = Compiler::new(resolver, dialect, Some(earlier));
    let text = compiler.expr(expr)?;
    Ok(Sql {
        text,
        params: compiler.params,
    })
}

/// A single SQL expression of a kind (`None` for `NULL`, with empty `sql`),
/// and the index of its parameter if it is a bound value.
#[derive(Clone)]
struct One {
    sql: String,
    kind: Option<Kind>,
    param: Option<usize>,
}

impl One {
    fn column(sql: String, kind: Kind) -> Self {
        Self {
            sql,
            kind: Some(kind),
            param: None,
        }
    }
}

/// One side of a comparison after resolution.
enum Side {
    /// A single value or column.
    One(One),
    /// A JSON array column.
    Column(String, Kind),
    /// Several known values.
    Values(Vec<(Param, Option<Kind>)>),
}

struct Compiler<'a> {
    resolver: &'a dyn Resolver,
    dialect: Dialect,
    /// Parameters of the statement before this condition, or `None` when
    /// the condition is embedded (its values are [`marker`]s).
    earlier: Option<usize>,
    params: Vec<Param>,
    /// The kind each parameter was bound as.
    kinds: Vec<Option<Kind>>,
    /// Parameters already turned into `%…%` patterns.
    patterns: Vec<usize>,
}

impl<'a> Compiler<'a> {
    fn new(resolver: &'a dyn Resolver, dialect: Dialect, earlier: Option<usize>) -> Self {
        Self {
            resolver,
            dialect,
            earlier,
            params: Vec::new(),
            kinds: Vec::new(),
            patterns: Vec::new(),
        }
    }

    fn expr(&mut self, expr: &Expr) -> Result<String, FilterError> {
        Ok(match expr {
            Expr::And(a, b) => format!("({} AND {})", self.expr(a)?, self.expr(b)?),
            Expr::Or(a, b) => format!("({} OR {})", self.expr(a)?, self.expr(b)?),
            Expr::Not(inner) => format!("(NOT {})", self.expr(inner)?),
            Expr::Compare(compare) => self.compare(compare)?,
        })
    }

    fn bind(&mut self, param: Param, kind: Option<Kind>) -> String {
        self.params.push(param);
        self.kinds.push(kind);
        let Some(earlier) = self.earlier else {
            return marker(self.params.len() - 1);
        };
        match self.dialect {
            // Numbered, so that a value used twice binds once.
            Dialect::Sqlite => format!("?{}", earlier + self.params.len()),
            Dialect::Postgres => {
                let cast = match kind {
                    Some(Kind::Text) | None => "text",
                    Some(Kind::Number) => "float8",
                    Some(Kind::Bool) => "boolean",
                };
                format!("${}::{cast}", earlier + self.params.len())
            }
        }
    }

    /// A column's SQL with its embedded values bound here.
    fn column_sql(&mut self, sql: String, params: Vec<Bound>) -> String {
        if params.is_empty() {
            return sql;
        }
        let placeholders: Vec<String> = params
            .into_iter()
            .map(|(param, kind)| self.bind(param, kind))
            .collect();
        splice(&sql, &placeholders)
    }

    fn side(&mut self, operand: &Operand) -> Result<Side, FilterError> {
        let value = match operand {
            Operand::Path { path, position } => {
                match self
                    .resolver
                    .resolve(path)
                    .map_err(|why| FilterError::new(*position, why))?
                {
                    Resolved::Column {
                        sql,
                        kind,
                        multi,
                        params,
                    } => {
                        let sql = self.column_sql(sql, params);
                        return Ok(if multi {
                            Side::Column(sql, kind)
                        } else {
                            Side::One(One::column(sql, kind))
                        });
                    }
                    Resolved::Value(Value::Array(items)) => {
                        let values = items
                            .iter()
                            .map(|item| {
                                scalar(item).ok_or_else(|| {
                                    FilterError::new(
                                        *position,
                                        format!("`{path}` holds nested values"),
                                    )
                                })
                            })
                            .collect::<Result<_, _>>()?;
                        return Ok(Side::Values(values));
                    }
                    Resolved::Value(value) => scalar(&value).ok_or_else(|| {
                        FilterError::new(*position, format!("`{path}` is not a plain value"))
                    })?,
                }
            }
            Operand::Text(text) => (Param::Text(text.clone()), Some(Kind::Text)),
            Operand::Number(number) => (Param::Number(*number), Some(Kind::Number)),
            Operand::Bool(value) => (Param::Bool(*value), Some(Kind::Bool)),
            Operand::Null => (Param::Null, None),
        };
        Ok(Side::One(self.bound(value)))
    }

    fn bound(&mut self, (param, kind): (Param, Option<Kind>)) -> One {
        // `''` equals null: an empty text value compares like NULL.
        if param == Param::Null || param == Param::Text(String::new()) {
            return One {
                sql: String::new(),
                kind: None,
                param: None,
            };
        }
        let sql = self.bind(param, kind);
        One {
            sql,
            kind,
            param: Some(self.params.len() - 1),
        }
    }

    fn compare(&mut self, compare: &Compare) -> Result<String, FilterError> {
        let at = compare.position;
        let left = self.side(&compare.left)?;
        let right = self.side(&compare.right)?;
        match (left, right) {
            (Side::One(l), Side::One(r)) => self.scalar(&l, compare.op, &r, at),
            (Side::Column(column, kind), Side::One(other)) => {
                self.each(&column, kind, compare.op, compare.any, &other, false, at)
            }
            (Side::One(other), Side::Column(column, kind)) => {
                self.each(&column, kind, compare.op, compare.any, &other, true, at)
            }
            (Side::Values(values), Side::One(other)) => self.values(values, compare, &other, false),
            (Side::One(other), Side::Values(values)) => self.values(values, compare, &other, true),
            _ => Err(FilterError::new(
                at,
                "both sides hold several values; compare one of them with a single value",
            )),
        }
    }

    /// `left op right` for single values; an empty `sql` is NULL.
    fn scalar(
        &mut self,
        left: &One,
        op: Op,
        right: &One,
        at: usize,
    ) -> Result<String, FilterError> {
        let (left_kind, right_kind) = (left.kind, right.kind);
        let null_test = |sql: &str, kind: Option<Kind>, equal: bool| match (kind, equal) {
            (Some(Kind::Text), true) => format!("({sql} IS NULL OR {sql} = '')"),
            (Some(Kind::Text), false) => format!("({sql} IS NOT NULL AND {sql} <> '')"),
            (_, true) => format!("({sql} IS NULL)"),
            (_, false) => format!("({sql} IS NOT NULL)"),
        };
        match (left_kind, right_kind, op) {
            (None, None, Op::Eq) => return Ok("(1 = 1)".to_owned()),
            (None, None, Op::Ne) => return Ok("(1 = 0)".to_owned()),
            (_, None, Op::Eq | Op::Ne) => return Ok(null_test(&left.sql, left_kind, op == Op::Eq)),
            (None, _, Op::Eq | Op::Ne) => {
                return Ok(null_test(&right.sql, right_kind, op == Op::Eq));
            }
            (None, _, _) | (_, None, _) if !matches!(op, Op::Like | Op::NotLike) => {
                return Err(FilterError::new(
                    at,
                    "only = and != compare with null or ''",
                ));
            }
            _ => {}
        }
        if let Op::Like | Op::NotLike = op {
            // Numbers and booleans have no text the backends agree on
            // (SQLite writes 2.0 and 1 where PostgreSQL writes 2 and true).
            if [left_kind, right_kind]
                .iter()
                .any(|kind| matches!(kind, Some(Kind::Number | Kind::Bool)))
            {
                return Err(FilterError::new(
                    at,
                    "`~` and `!~` compare text; use = or < with numbers and booleans",
                ));
            }
            let text = |sql: &str| match self.dialect {
                Dialect::Sqlite => format!("COALESCE({sql}, '')"),
                Dialect::Postgres => format!("COALESCE(({sql})::text, '')"),
            };
            let subject = if left.sql.is_empty() {
                "''".to_owned()
            } else {
                text(&left.sql)
            };
            let pattern = match right.param.map(|i| (i, &self.params[i])) {
                _ if right.sql.is_empty() => "'%%'".to_owned(),
                // A bound text value: match it literally, anywhere.
                Some((index, Param::Text(value))) => {
                    if !self.patterns.contains(&index) {
                        let escaped = value
                            .replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_");
                        self.params[index] = Param::Text(format!("%{escaped}%"));
                        self.patterns.push(index);
                    }
                    right.sql.clone()
                }
                _ => format!("('%' || {} || '%')", text(&right.sql)),
            };
            let like = match self.dialect {
                Dialect::Sqlite => "LIKE",
                Dialect::Postgres => "ILIKE",
            };
            let matched = format!("({subject} {like} {pattern} ESCAPE '\\')");
            return Ok(if op == Op::Like {
                matched
            } else {
                format!("(NOT {matched})")
            });
        }
        if left_kind != right_kind {
            return Err(FilterError::new(at, "the two sides have different types"));
        }
        let symbol = match op {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Like | Op::NotLike => unreachable!("handled above"),
        };
        let (l, r) = (&left.sql, &right.sql);
        if op == Op::Ne {
            // Like `!= ''`, a missing value differs from any present one.
            return Ok(format!("({l} IS NULL OR {l} <> {r})"));
        }
        Ok(format!("({l} {symbol} {r})"))
    }

    /// A comparison against each element of a JSON array column.
    #[allow(clippy::too_many_arguments)]
    fn each(
        &mut self,
        column: &str,
        kind: Kind,
        op: Op,
        any: bool,
        other: &One,
        column_on_right: bool,
        at: usize,
    ) -> Result<String, FilterError> {
        let (source, element) = match (self.dialect, kind) {
            (Dialect::Sqlite, _) => (format!("json_each({column}) AS j"), "j.value".to_owned()),
            (Dialect::Postgres, Kind::Text) => (
                format!("jsonb_array_elements_text({column}) AS j(value)"),
                "j.value".to_owned(),
            ),
            (Dialect::Postgres, Kind::Number) => (
                format!("jsonb_array_elements_text({column}) AS j(value)"),
                "(j.value)::float8".to_owned(),
            ),
            (Dialect::Postgres, Kind::Bool) => (
                format!("jsonb_array_elements_text({column}) AS j(value)"),
                "(j.value)::boolean".to_owned(),
            ),
        };
        let element = One::column(element, kind);
        let condition = if column_on_right {
            self.scalar(other, op, &element, at)?
        } else {
            self.scalar(&element, op, other, at)?
        };
        Ok(if any {
            format!("EXISTS (SELECT 1 FROM {source} WHERE {condition})")
        } else {
            format!("NOT EXISTS (SELECT 1 FROM {source} WHERE NOT {condition})")
        })
    }

    /// A comparison against each of several known values.
    fn values(
        &mut self,
        values: Vec<(Param, Option<Kind>)>,
        compare: &Compare,
        other: &One,
        values_on_right: bool,
    ) -> Result<String, FilterError> {
        if values.is_empty() {
            // `other` goes unused: unbind it (it is the last bound), or the
            // same SQL would come with a different number of parameters.
            if other
                .param
                .is_some_and(|index| index + 1 == self.params.len())
            {
                self.params.pop();
                self.kinds.pop();
            }
            return Ok(if compare.any { "(1 = 0)" } else { "(1 = 1)" }.to_owned());
        }
        let mut parts = Vec::with_capacity(values.len());
        for value in values {
            let value = self.bound(value);
            parts.push(if values_on_right {
                self.scalar(other, compare.op, &value, compare.position)?
            } else {
                self.scalar(&value, compare.op, other, compare.position)?
            });
        }
        let joiner = if compare.any { " OR " } else { " AND " };
        Ok(format!("({})", parts.join(joiner)))
    }
}

fn scalar(value: &Value) -> Option<(Param, Option<Kind>)> {
    Some(match value {
        Value::Null => (Param::Null, None),
        Value::Bool(b) => (Param::Bool(*b), Some(Kind::Bool)),
        Value::Number(n) => (Param::Number(n.as_f64()?), Some(Kind::Number)),
        Value::String(s) => (Param::Text(s.clone()), Some(Kind::Text)),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

#[cfg(test)]
mod tests;
