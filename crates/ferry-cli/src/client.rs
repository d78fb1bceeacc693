//! A small blocking client of a node's REST API, used by the CLI and the demo.

use anyhow::{Context as _, bail};
use ferry_transport::NodeDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest API answer the CLI reads (a batch query's answers can be tens of MB; ureq's own
/// default is 10 MB).
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// Where a node's API is and which token to use.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// What [`ApiClient::download`] wrote.
pub struct Download {
    pub bytes: u64,
    /// Hex SHA-256 of the bytes written (equal to the node's record).
    pub sha256: String,
}

/// File in a node's state directory holding the admin token `ferry init` created (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

impl ApiClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        ApiClient {
            base: base.into().trim_end_matches('/').to_string(),
            token: token.into(),
            agent,
        }
    }

    /// From `--api`/`--token`, else `$FERRY_TOKEN`, else the node directory's config and admin
    /// token file.
    pub fn for_node(
        dir: &Path,
        api: Option<String>,
        token: Option<String>,
    ) -> anyhow::Result<Self> {
        let node = NodeDir::open(dir).ok();
        let base = match (api, &node) {
            (Some(a), _) => a,
            (None, Some(n)) => format!("http://{}", n.config.api_listen),
            (None, None) => bail!(
                "no node directory at {} and no --api address given",
                dir.display()
            ),
        };
        let token = match token.or_else(|| std::env::var("FERRY_TOKEN").ok()) {
            Some(t) => t,
            None => {
                let n = node
                    .as_ref()
                    .context("no --token and no node directory to read the admin token from")?;
                let path: PathBuf = n.path(&n.config.state_dir).join(ADMIN_TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no --token and cannot read {} (set FERRY_TOKEN or create a token with `ferry token create`)", path.display()))?
                    .trim()
                    .to_string()
            }
        };
        Ok(ApiClient::new(base, token))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn check(
        &self,
        method: &str,
        path: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<Value> {
        let mut resp = resp.with_context(|| {
            format!(
                "cannot reach the node's API at {} (is `ferry serve` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("{method} {path}: {msg} (HTTP {})", status.as_u16());
        }
        Ok(body)
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.check("GET", path, r)
    }

    /// A GET whose answer is read as `T` (a `ferry-api` type); an answer of another shape is
    /// an error naming the path and the type.
    pub fn get_typed<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let v = self.get(path)?;
        serde_json::from_value(v).with_context(|| {
            format!(
                "GET {path}: the node's answer is not a {} (a node of another version?)",
                std::any::type_name::<T>()
            )
        })
    }

    /// A GET whose answer is not JSON (a CSV download); errors are read as [`Self::get`]'s.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        match r {
            Ok(mut resp) if resp.status().is_success() => resp
                .body_mut()
                .with_config()
                .limit(MAX_ANSWER_BYTES)
                .read_to_string()
                .with_context(|| format!("GET {path}: cannot read the answer")),
            other => match self.check("GET", path, other) {
                Ok(v) => Ok(v.to_string()),
                Err(e) => Err(e),
            },
        }
    }

    /// Streams the answer of a GET to `out` (through a temporary file next to it, renamed
    /// when complete), hashing it on the way; fails, leaving nothing, when the bytes do not
    /// match the SHA-256 the node sends in `X-Ferry-Sha256`. No overall timeout.
    pub fn download(&self, path: &str, out: &Path) -> anyhow::Result<Download> {
        use sha2::{Digest, Sha256};
        use std::io::{Read, Write};
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .get(&url)
            .config()
            .timeout_global(None)
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        let mut resp = match r {
            Ok(resp) if resp.status().is_success() => resp,
            other => {
                self.check("GET", path, other)?;
                bail!("GET {path}: no answer");
            }
        };
        let expected = resp
            .headers()
            .get("x-ferry-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .with_context(|| format!("GET {path}: the node sent no X-Ferry-Sha256 header"))?;
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut bytes = 0u64;
        loop {
            let n = reader.read(&mut buf).with_context(|| {
                format!("GET {path}: the download broke off after {bytes} bytes")
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", tmp.path().display()))?;
            bytes += n as u64;
        }
        let got: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != expected {
            bail!(
                "GET {path}: the {bytes} bytes received have SHA-256 {got}, not {expected} as the node recorded; nothing written"
            );
        }
        tmp.as_file().sync_all()?;
        tmp.persist(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        Ok(Download { bytes, sha256: got })
    }

    /// Follows the server-sent events of a GET (no overall timeout): `on_event(name, data)`
    /// for each message, until it answers false or the node ends the stream.
    pub fn follow_events(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        use std::io::BufRead;
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .get(&url)
            .config()
            .timeout_global(None)
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "text/event-stream")
            .call();
        let mut resp = match r {
            Ok(resp) if resp.status().is_success() => resp,
            other => {
                self.check("GET", path, other)?;
                bail!("GET {path}: no answer");
            }
        };
        let reader =
            std::io::BufReader::new(resp.body_mut().with_config().limit(u64::MAX).reader());
        let (mut name, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.with_context(|| format!("GET {path}: the event stream broke off"))?;
            if line.is_empty() {
                // A blank line ends a message; comments (keep-alives) leave no data.
                if !data.is_empty() && !on_event(&name, &data)? {
                    return Ok(());
                }
                name.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        Ok(())
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .delete(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        self.check("DELETE", path, r)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.check("POST", path, r)
    }

    pub fn post_text(&self, path: &str, text: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "text/plain")
            .send(text.to_string());
        self.check("POST", path, r)
    }

    /// Sends the file at `file` as the body of a POST, streamed from disk (never read into
    /// memory), with `query` parameters. No overall timeout: a large upload and the node's
    /// checks of it take as long as they take.
    pub fn post_file(
        &self,
        path: &str,
        query: &[(&str, String)],
        file: &Path,
    ) -> anyhow::Result<Value> {
        let body =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .config()
            .timeout_global(None)
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream");
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let r = req.send(body);
        self.check("POST", path, r)
    }

    pub fn delete_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .agent
            .delete(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .force_send_body()
            .send(body.to_string());
        self.check("DELETE", path, r)
    }

    /// Waits until the API answers (after starting a node).
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(resp) = self
                .agent
                .get(&format!("{}/api/v1/health", self.base))
                .call()
                && resp.status().is_success()
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the node at {} did not come up within {timeout:?}",
                    self.base
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
