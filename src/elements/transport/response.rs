//! A complete response as the transport hands it back, and how a response is shown in log
//! lines: status, content type and the start of the body, credentials cut out.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::StatusCode;

use crate::elements::redact::Redactor;

/// A complete HTTP response (any status).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type` header, or empty.
    pub content_type: String,
    /// The whole body.
    pub body: Bytes,
    /// Cuts credentials out of what is shown of the body.
    pub redactor: Arc<Redactor>,
}

impl HttpResponse {
    /// Status, content type and the first 200 bytes of the body, credentials cut out, for log
    /// lines.
    pub fn describe(&self) -> String {
        describe(self.status, &self.content_type, &self.body, &self.redactor)
    }

    /// `text` (taken from this response) with credentials cut out.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.apply(text)
    }

    /// Status, content type and body length, for responses whose body may hold a secret.
    pub fn describe_without_body(&self) -> String {
        format!(
            "status {}, content type {:?}, {} bytes",
            self.status.as_u16(),
            self.content_type,
            self.body.len()
        )
    }
}

/// Formats status, content type and the first 200 characters of a body, credentials cut
/// out first (so that no secret is cut in half and escapes), for log lines.
pub fn describe(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    redactor: &Redactor,
) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    let excerpt = redactor.excerpt(&head, 200);
    format!(
        "status {}, content type {:?}, body starts {:?}",
        status.as_u16(),
        content_type,
        excerpt
    )
}
