//! The registry access token, kept out of `Debug`, `Display`, logs and errors.

use std::fmt;

/// A secret access token. `Debug` and `Display` print `****`; only [`Token::expose`] gives the
/// value, for the one place that sends it.
///
/// ```
/// use registry_client::Token;
///
/// let token = Token::new("glpat-secret");
/// assert_eq!(format!("{token:?}"), "Token(****)");
/// assert_eq!(token.to_string(), "****");
/// assert_eq!(token.expose(), "glpat-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token from `MODEL_REGISTRY_TOKEN`, if set and not empty.
    pub fn from_env() -> Option<Self> {
        std::env::var(crate::REGISTRY_TOKEN_ENV).ok().filter(|t| !t.is_empty()).map(Self)
    }

    /// The secret itself. Call it only to put the token on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(****)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = Token::new("s3cr3t-value");
        let wrapped = Some(token.clone());
        for shown in [format!("{token:?}"), format!("{token}"), format!("{wrapped:?}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }
}
