//! Parsing filter and rule expressions into an [`Expr`] tree.
//!
//! Grammar (PocketBase's, which users already know):
//!
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "(" expr ")" | operand op operand
//! op      := "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"   (prefix "?" = any-of)
//! operand := path | 'string' | "string" | number | true | false | null
//! path    := name ("." name)*  |  "@" name ("." name)*
//! ```
//!
//! Errors carry the character position where the problem starts.

use super::FilterError;

/// Longest expression accepted, in characters.
pub const MAX_LENGTH: usize = 3500;
/// Most comparisons in one expression.
pub const MAX_COMPARISONS: usize = 200;
/// Deepest nesting of parentheses and `!`.
const MAX_DEPTH: usize = 64;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both sides hold.
    And(Box<Expr>, Box<Expr>),
    /// Either side holds.
    Or(Box<Expr>, Box<Expr>),
    /// The inner expression does not hold.
    Not(Box<Expr>),
    /// A comparison.
    Compare(Compare),
}

impl Expr {
    /// How many relation hops its paths take in all (`author.team.name`
    /// is two; request values none): each is a subquery per row.
    pub fn relation_hops(&self) -> usize {
        let hops = |operand: &Operand| match operand {
            Operand::Path { path, .. } if !path.starts_with('@') => path.matches('.').count(),
            _ => 0,
        };
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.relation_hops() + b.relation_hops(),
            Expr::Not(inner) => inner.relation_hops(),
            Expr::Compare(compare) => hops(&compare.left) + hops(&compare.right),
        }
    }
}

/// `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// Left operand.
    pub left: Operand,
    /// The operator.
    pub op: Op,
    /// `?op`: with multi-valued operands, holds if any value matches
    /// (without it, all must).
    pub any: bool,
    /// Right operand.
    pub right: Operand,
    /// Where the comparison starts.
    pub position: usize,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `~`: contains (case-insensitive)
    Like,
    /// `!~`: does not contain
    NotLike,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field path (`title`, `author.team.name`) or a request value
    /// (`@request.auth.id`, `@now`), resolved when compiling.
    Path {
        /// The path as written.
        path: String,
        /// Where it starts.
        position: usize,
    },
    /// A string literal.
    Text(String),
    /// A number literal.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Path(String),
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
    Op(Op, bool),
    And,
    Or,
    Not,
    Open,
    Close,
}

/// Parses `text`.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let length = text.chars().count();
    if length > MAX_LENGTH {
        return Err(FilterError::new(
            MAX_LENGTH,
            format!("the expression is longer than {MAX_LENGTH} characters"),
        ));
    }
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(FilterError::new(0, "the expression is empty"));
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: length,
        comparisons: 0,
    };
    let expr = parser.or(0)?;
    if let Some((_, position)) = parser.tokens.get(parser.next) {
        return Err(FilterError::new(
            *position,
            "unexpected input after the expression",
        ));
    }
    Ok(expr)
}

fn lex(text: &str) -> Result<Vec<(Token, usize)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two = |a: char, b: char| c == a && chars.get(i + 1) == Some(&b);
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            _ if two('&', '&') => {
                i += 2;
                Token::And
            }
            _ if two('|', '|') => {
                i += 2;
                Token::Or
            }
            '\'' | '"' => {
                let quote = c;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(FilterError::new(start, "unterminated string")),
                        Some('\\') if matches!(chars.get(i + 1), Some(&q) if q == quote || q == '\\') =>
                        {
                            value.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        // PostgreSQL's text cannot hold it; no backend
                        // stores it in a record.
                        Some('\0') => {
                            return Err(FilterError::new(
                                i,
                                "a string cannot hold the NUL character",
                            ));
                        }
                        Some(&other) => {
                            value.push(other);
                            i += 1;
                        }
                    }
                }
                Token::Text(value)
            }
            '?' | '=' | '!' | '>' | '<' | '~' => {
                let any = c == '?';
                let at = if any { i + 1 } else { i };
                let (op, width) = match (chars.get(at), chars.get(at + 1)) {
                    (Some('='), _) => (Op::Eq, 1),
                    (Some('!'), Some('=')) => (Op::Ne, 2),
                    (Some('!'), Some('~')) => (Op::NotLike, 2),
                    (Some('>'), Some('=')) => (Op::Ge, 2),
                    (Some('>'), _) => (Op::Gt, 1),
                    (Some('<'), Some('=')) => (Op::Le, 2),
                    (Some('<'), _) => (Op::Lt, 1),
                    (Some('~'), _) => (Op::Like, 1),
                    (Some('!'), _) if !any => {
                        i += 1;
                        tokens.push((Token::Not, start));
                        continue;
                    }
                    _ => return Err(FilterError::new(start, "unknown operator")),
                };
                i = at + width;
                Token::Op(op, any)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    i += 1;
                }
                let literal: String = chars[start..i].iter().collect();
                let number = literal
                    .parse::<f64>()
                    .map_err(|_| FilterError::new(start, format!("`{literal}` is not a number")))?;
                Token::Number(number)
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' => {
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.ends_with('.') || word.contains("..") || word == "@" {
                    return Err(FilterError::new(
                        start,
                        format!("`{word}` is not a valid field path"),
                    ));
                }
                match word.as_str() {
                    "true" => Token::Bool(true),
                    "false" => Token::Bool(false),
                    "null" => Token::Null,
                    _ => Token::Path(word),
                }
            }
            other => {
                return Err(FilterError::new(
                    start,
                    format!("unexpected character `{other}`"),
                ));
            }
        };
        tokens.push((token, start));
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    end: usize,
    comparisons: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(token, _)| token)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.next)
            .map_or(self.end, |(_, position)| *position)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.next += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut left = self.unary(depth)?;
        while self.peek() == Some(&Token::And) {
            self.next += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::new(
                self.position(),
                "the expression is nested too deeply",
            ));
        }
        match self.peek() {
            Some(Token::Not) => {
                self.next += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Token::Open) => {
                let open = self.position();
                self.next += 1;
                let inner = self.or(depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(FilterError::new(open, "unclosed parenthesis"));
                }
                self.next += 1;
                Ok(inner)
            }
            _ => self.compare(),
        }
    }

    fn compare(&mut self) -> Result<Expr, FilterError> {
        let position = self.position();
        let left = self.operand()?;
        let (op, any) = match self.peek() {
            Some(Token::Op(op, any)) => (*op, *any),
            _ => {
                return Err(FilterError::new(
                    self.position(),
                    "expected a comparison operator",
                ));
            }
        };
        self.next += 1;
        let right = self.operand()?;
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(FilterError::new(
                position,
                format!("the expression has more than {MAX_COMPARISONS} comparisons"),
            ));
        }
        Ok(Expr::Compare(Compare {
            left,
            op,
            any,
            right,
            position,
        }))
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let position = self.position();
        let operand = match self.peek() {
            Some(Token::Path(path)) => Operand::Path {
                path: path.clone(),
                position,
            },
            Some(Token::Text(text)) => Operand::Text(text.clone()),
            Some(Token::Number(number)) => Operand::Number(*number),
            Some(Token::Bool(value)) => Operand::Bool(*value),
            Some(Token::Null) => Operand::Null,
            Some(_) => {
                return Err(FilterError::new(
                    position,
                    "expected a field, a value or `(`",
                ));
            }
            None => return Err(FilterError::new(position, "the expression ends too early")),
        };
        self.next += 1;
        Ok(operand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(path: &str, position: usize) -> Operand {
        Operand::Path {
            path: path.into(),
            position,
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let expr = parse("a = 1 || b = 2 && c = 3").unwrap();
        let Expr::Or(_, right) = expr else {
            panic!("{expr:?}")
        };
        assert!(matches!(*right, Expr::And(..)), "{right:?}");
    }

    #[test]
    fn comparisons_keep_operands_operators_and_positions() {
        let expr = parse("author.name ?!~ 'bob' && !(@request.auth.id = \"x\\\"y\")").unwrap();
        let Expr::And(left, right) = expr else {
            panic!()
        };
        assert_eq!(
            *left,
            Expr::Compare(Compare {
                left: path("author.name", 0),
                op: Op::NotLike,
                any: true,
                right: Operand::Text("bob".into()),
                position: 0,
            })
        );
        let Expr::Not(inner) = *right else { panic!() };
        let Expr::Compare(compare) = *inner else {
            panic!()
        };
        assert_eq!(compare.left, path("@request.auth.id", 27));
        assert_eq!(compare.right, Operand::Text("x\"y".into()));
    }

    #[test]
    fn literals_parse() {
        let Expr::Compare(c) = parse("n >= -2.5").unwrap() else {
            panic!()
        };
        assert_eq!((c.op, c.right), (Op::Ge, Operand::Number(-2.5)));
        let Expr::Compare(c) = parse("done = false").unwrap() else {
            panic!()
        };
        assert_eq!(c.right, Operand::Bool(false));
        let Expr::Compare(c) = parse("x != null").unwrap() else {
            panic!()
        };
        assert_eq!((c.op, c.right), (Op::Ne, Operand::Null));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("", 0, "empty"),
            ("title = 'abc", 8, "unterminated string"),
            ("title = ", 8, "ends too early"),
            ("title 'x'", 6, "expected a comparison operator"),
            ("(a = 1", 0, "unclosed parenthesis"),
            ("a = 1 b = 2", 6, "unexpected input"),
            ("a = 1 ; drop table x", 6, "unexpected character `;`"),
            ("a ?! 1", 2, "unknown operator"),
            ("a. = 1", 0, "not a valid field path"),
        ];
        for (text, position, message) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.position, position, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let long = format!("a = '{}'", "x".repeat(MAX_LENGTH));
        assert!(parse(&long).unwrap_err().message.contains("longer than"));
        let many = vec!["a = 1"; MAX_COMPARISONS + 1].join(" || ");
        assert!(
            parse(&many)
                .unwrap_err()
                .message
                .contains("more than 200 comparisons")
        );
        let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(
            parse(&deep)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
    }
}
