//! The web dialer's files, compiled into the binary so the gateway serves its page with nothing
//! to install beside it and no file system reads per request. Adding a file is one line.

/// One file the HTTP listener serves.
#[derive(Debug)]
pub(super) struct Asset {
    /// The request path it answers.
    pub(super) path: &'static str,
    /// Its `Content-Type`.
    pub(super) content_type: &'static str,
    /// Its bytes.
    pub(super) body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the dialer (`gateway/web/`).
#[rustfmt::skip]
const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: HTML, body: include_bytes!("../../web/index.html") },
    Asset { path: "/index.html", content_type: HTML, body: include_bytes!("../../web/index.html") },
    Asset { path: "/app.js", content_type: JS, body: include_bytes!("../../web/app.js") },
    Asset { path: "/app.css", content_type: CSS, body: include_bytes!("../../web/app.css") },
    Asset { path: "/sip.js", content_type: JS, body: include_bytes!("../../web/sip.js") },
];

/// The file at `path` (without its query string), if there is one.
pub(super) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_unique_and_the_page_is_html() {
        for (i, asset) in ASSETS.iter().enumerate() {
            assert!(asset.path.starts_with('/'), "{}", asset.path);
            assert!(
                ASSETS[..i].iter().all(|other| other.path != asset.path),
                "{} twice",
                asset.path
            );
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
        }
        let page = find("/").expect("the page");
        assert_eq!(page.content_type, HTML);
        assert!(
            page.body.starts_with(b"<!doctype html>") || page.body.starts_with(b"<!DOCTYPE html>")
        );
        assert!(find("/nothing").is_none());
    }
}
