//! The standard HTTP headers an object is served with (`Cache-Control`,
//! `Content-Disposition`, `Content-Encoding`, `Content-Language`,
//! `Expires`), kept as they were given when it was written, over S3 or
//! REST, and sent back on every download.

use crate::db::backend::{Arg, text_arg};
use crate::db::schema::Storage as Column;
use http::{HeaderMap, HeaderName, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The headers, each absent unless given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectHeaders {
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition` (an attachment is still forced for active
    /// content outside website buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding` (`gzip`…): the bytes are stored as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Expires`, an HTTP date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl ObjectHeaders {
    /// The headers of a request (REST uploads), those that are text.
    pub fn from_request(headers: &HeaderMap) -> Self {
        let text = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            cache_control: text(header::CACHE_CONTROL),
            content_disposition: text(header::CONTENT_DISPOSITION),
            content_encoding: text(header::CONTENT_ENCODING),
            content_language: text(header::CONTENT_LANGUAGE),
            expires: text(header::EXPIRES),
        }
    }

    /// Each header given, by name.
    pub fn pairs(&self) -> impl Iterator<Item = (HeaderName, &str)> {
        [
            (header::CACHE_CONTROL, &self.cache_control),
            (header::CONTENT_DISPOSITION, &self.content_disposition),
            (header::CONTENT_ENCODING, &self.content_encoding),
            (header::CONTENT_LANGUAGE, &self.content_language),
            (header::EXPIRES, &self.expires),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    }

    /// The column's value.
    pub fn to_arg(&self) -> Arg {
        if self == &Self::default() {
            return Arg::NullOf(Column::Text);
        }
        text_arg(&serde_json::to_string(self).unwrap_or_default())
    }

    /// Read back from the column.
    pub fn from_column(value: &Value) -> Self {
        value
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }
}
