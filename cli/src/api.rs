//! The admin API, as a machine client calls it: every request signed with the key from the
//! environment (`X-Carrot-Key`, `X-Carrot-Timestamp`, `X-Carrot-Signature`), on the routes of
//! the key's program (`/v1/programs/{CARROT_PROGRAM}`).

use crate::draw::encode;
use anyhow::{Context, anyhow, bail};
use carrot::http::signed_headers;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// How long one request may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Api {
    base: hyper::Uri,
    /// `/v1/programs/{program}`: every path is under it.
    program_root: String,
    key_id: String,
    secret: String,
}

/// The server's answer: its status and JSON body (`null` when empty).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Api {
    /// The API at `CARROT_URL` for program `CARROT_PROGRAM`, signing with `CARROT_KEY_ID` and
    /// `CARROT_SECRET`.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| anyhow!("{name} is not set (see docs/cli.md)"))
        };
        let url = var("CARROT_URL")?;
        let base: hyper::Uri = url
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("CARROT_URL {url:?} is not a URL"))?;
        let loopback = matches!(base.host(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match base.scheme_str() {
            Some("https") => {}
            // A signed request can be replayed within the timestamp tolerance by whoever sees
            // it: plain HTTP only where nobody else can.
            Some("http") if loopback => {}
            _ => bail!(
                "CARROT_URL must be an https:// URL (http:// only for localhost), got {url:?}"
            ),
        }
        Ok(Self {
            base,
            program_root: format!("/v1/programs/{}", encode(&var("CARROT_PROGRAM")?)),
            key_id: var("CARROT_KEY_ID")?,
            secret: var("CARROT_SECRET")?,
        })
    }

    /// GETs `path` (with its query, if any) under the program's root, signing the empty body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send("GET", path, Vec::new(), "application/json").await
    }

    /// Signs `body` now and sends it to `path` under the program's root (`""` is the root).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<Answer> {
        let url = format!(
            "{}{}{path}",
            self.base.to_string().trim_end_matches('/'),
            self.program_root
        );
        let timestamp = jiff::Timestamp::now().as_second();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", "application/json");
        for (name, value) in
            signed_headers(&self.key_id, &self.secret, timestamp, &body, content_type)
        {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        let sent = async {
            if self.base.scheme_str() == Some("https") {
                let tls = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .context("loading the system's root certificates")?
                    .https_only()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new())
                    .build(tls)
                    .request(request)
                    .await?)
            } else {
                Ok::<_, anyhow::Error>(
                    Client::builder(TokioExecutor::new())
                        .build_http()
                        .request(request)
                        .await?,
                )
            }
        };
        let response = tokio::time::timeout(TIMEOUT, sent)
            .await
            .map_err(|_| anyhow!("{method} {url}: no answer within {} s", TIMEOUT.as_secs()))?
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{method} {url} answered {status} with a body that is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        Ok(Answer { status, body })
    }
}

impl Answer {
    /// Prints a problem+json answer: status, title and detail, then each field at fault.
    pub fn print_problem(&self, what: &str) {
        let text = |key: &str| self.body[key].as_str().unwrap_or_default().to_owned();
        say!(
            "{what} ({} {}): {}",
            self.status,
            text("title"),
            text("detail")
        );
        for error in self.body["errors"].as_array().into_iter().flatten() {
            say!(
                "  {}: {}",
                error["field"].as_str().unwrap_or("?"),
                error["reason"].as_str().unwrap_or("?")
            );
        }
    }
}
