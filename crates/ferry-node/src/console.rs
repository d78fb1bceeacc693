//! The web console: a single-page application built from `console/` (at the repository root)
//! into `crates/ferry-node/console-dist/`, which is committed and embedded in the binary here,
//! so `cargo build` alone produces the whole program and a node needs no internet access to
//! serve it (bank networks have none): every script, style and font is in the embedded files.
//!
//! Served on the API address: `GET /` is the application, `GET /assets/...` its files. The
//! console talks only to `/api/v1` on the same origin, signed in with the session cookie.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/console-dist");

/// What the browser may load and from where: only this origin, nothing inline but styles
/// (the graph editor positions nodes with inline styles).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Routes serving the console; merged beside `/api/v1` by [`crate::api::router`].
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*file}", get(asset))
}

async fn index() -> Response {
    serve("index.html", false)
}

async fn asset(Path(file): Path<String>) -> Response {
    serve(&format!("assets/{file}"), true)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, immutable: bool) -> Response {
    let Some(file) = DIST.get_file(path) else {
        return (StatusCode::NOT_FOUND, "no such file in the console").into_response();
    };
    let mut response = file.contents().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Asset names carry a content hash, so they never change; index.html must be re-read
    // after an upgrade.
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_console_references_only_embedded_assets() {
        let index = DIST.get_file("index.html").expect(
            "console-dist/index.html is embedded (build it with `npm run build` in console/)",
        );
        let html = index.contents_utf8().expect("index.html is UTF-8");
        let mut referenced = 0;
        for part in html.split(['"', '\'']) {
            if let Some(asset) = part.strip_prefix("./assets/") {
                referenced += 1;
                assert!(
                    DIST.get_file(format!("assets/{asset}")).is_some(),
                    "index.html references assets/{asset}, which is not embedded"
                );
            }
            assert!(
                !part.starts_with("http://") && !part.starts_with("https://"),
                "index.html loads {part} from the network; the console must work offline"
            );
        }
        assert!(referenced >= 1, "index.html references no script: {html}");
    }
}
