//! Where a vault lives: a SQLite file or a PostgreSQL database.
//!
//! The command line takes either `--vault FILE` or `--database URL`; both
//! end up here. URL forms:
//!
//! - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME&…]`
//!   (also `postgresql://`): any libpq-style URL the `postgres` crate reads,
//!   plus oathdesk's own `schema` parameter, which keeps a vault in a schema
//!   of its own so one database can hold several vaults;
//! - `sqlite:///absolute/path.db`, `sqlite://relative/path.db` or
//!   `sqlite:path.db`;
//! - anything without a `scheme://` is a file path.
//!
//! A location is shown with its password masked (its `Display`),
//! so it can go into error messages and logs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A vault's database.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may hold a password: show it with `Display`).
    Postgres(String),
}

impl Location {
    /// Reads a URL or a file path.
    pub fn parse(text: &str) -> Result<Location> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Invalid(
                "the database location is empty: give a file path, sqlite://PATH or postgres://…"
                    .into(),
            ));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => Ok(Location::Postgres(text.to_owned())),
                "sqlite" => Ok(Location::Sqlite(PathBuf::from(&text["sqlite://".len()..]))),
                _ => Err(Error::Invalid(format!(
                    "unknown database '{scheme}://': use postgres://USER@HOST/DATABASE, \
                     sqlite://PATH or a file path"
                ))),
            };
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        Ok(Location::Sqlite(PathBuf::from(text)))
    }

    /// The file of a SQLite location.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Sqlite(path.to_owned())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Sqlite(path)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&mask_password(url)),
        }
    }
}

/// Debug output masks the password too: locations end up in `{:?}` of
/// command-line options.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Location::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

/// The URL with the password of its user part and any `password=`
/// parameter replaced by `***`.
pub fn mask_password(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut masked = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(at) => rest.split_at(at),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        masked.push('?');
        masked.push_str(&parameters.join("&"));
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(
            Location::parse("postgres://u@h/db").unwrap(),
            Location::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            Location::parse("PostgreSQL://u@h/db").unwrap().kind(),
            "postgres"
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/vault.db").unwrap(),
            Location::Sqlite("/var/lib/vault.db".into())
        );
        assert_eq!(
            Location::parse("sqlite://rel/vault.db").unwrap(),
            Location::Sqlite("rel/vault.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:vault.db").unwrap(),
            Location::Sqlite("vault.db".into())
        );
        assert_eq!(
            Location::parse("/tmp/v.db").unwrap(),
            Location::Sqlite("/tmp/v.db".into())
        );
        let err = Location::parse("mysql://h/db").unwrap_err().to_string();
        assert!(err.starts_with("unknown database 'mysql://'"), "{err}");
        assert!(Location::parse("  ").is_err());
    }

    #[test]
    fn passwords_never_show() {
        let location =
            Location::parse("postgres://desk:s3cret@db.example:5432/vault?schema=a&password=x")
                .unwrap();
        let shown = location.to_string();
        assert_eq!(
            shown,
            "postgres://desk:***@db.example:5432/vault?schema=a&password=***"
        );
        assert!(!format!("{location:?}").contains("s3cret"));
        assert_eq!(
            mask_password("postgres://desk@h/db"),
            "postgres://desk@h/db"
        );
        assert_eq!(mask_password("postgres://h"), "postgres://h");
        // A password with '@' in it: the host is after the last '@'.
        assert_eq!(
            mask_password("postgres://u:p@ss@h/d"),
            "postgres://u:***@h/d"
        );
    }
}
