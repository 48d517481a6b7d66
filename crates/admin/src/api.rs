//! The admin API: HTTP/JSON behind a bearer token (described by `openapi.yaml` beside
//! this crate).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use turnpike_server::{AdminSection, ServerControl};

use crate::Operator;

/// The token in force: configured, from its file, or generated (then also returned as
/// the second value, to be printed once).
///
/// # Errors
///
/// The token file cannot be read.
pub fn token(admin: &AdminSection) -> std::io::Result<(String, Option<String>)> {
    if !admin.token.is_empty() {
        return Ok((admin.token.clone(), None));
    }
    if let Some(file) = &admin.token_file {
        let text = std::fs::read_to_string(file)?;
        let line = text.lines().next().unwrap_or("").trim().to_owned();
        if line.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: the token file is empty", file.display()),
            ));
        }
        return Ok((line, None));
    }
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok((token.clone(), Some(token)))
}

/// The admin API's routes.
pub fn router(_control: ServerControl, _operator: Arc<dyn Operator>, _token: String) -> Router {
    Router::new().route("/live", get(|| async { "live\n" }))
}
