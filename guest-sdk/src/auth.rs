//! Who invoked the function (`aura:platform/auth`), and user lookup. The
//! function needs an `auth` grant: `auth = "caller"`, or `auth = "service"`
//! for [`lookup`].

use crate::bindings::aura::platform::auth as wit;

/// A user as rules see them (`@request.auth.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's id (a record id of `users`).
    pub id: String,
    /// The user's email.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Whether the email is verified.
    pub verified: bool,
}

impl From<wit::User> for User {
    fn from(user: wit::User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            roles: user.roles,
            verified: user.verified,
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The grant does not allow it (lookup needs `auth = "service"`).
    Denied(String),
    /// No such user.
    NotFound(String),
    /// Anything else.
    Internal(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Denied(m) | AuthError::NotFound(m) | AuthError::Internal(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// The signed-in user who invoked the function, or `None` (nobody signed
/// in, the admin token, a schedule or a queued run).
pub fn caller() -> Option<User> {
    wit::caller().map(User::from)
}

/// A user by id (needs `auth = "service"`).
pub fn lookup(id: &str) -> Result<User, AuthError> {
    wit::lookup(id).map(User::from).map_err(|err| match err {
        wit::Error::Denied(m) => AuthError::Denied(m),
        wit::Error::NotFound(m) => AuthError::NotFound(m),
        wit::Error::Internal(m) => AuthError::Internal(m),
    })
}
