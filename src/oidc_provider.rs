//! A real OpenID provider for tests: panva's `oidc-provider` from npm (which
//! `scripts/test` installs under `target/test-node`), run by Node from
//! `tests/support/oidc_provider.mjs` on a free loopback port, and a browser
//! that signs in through its development login and consent forms, keeping
//! cookies and following redirects by hand.

use crate::in_ci;
use std::collections::BTreeMap;

/// The client registered at the provider.
pub const CLIENT_ID: &str = "sesame";
/// Its secret.
pub const CLIENT_SECRET: &str = "a-client-secret-for-tests";

/// The running provider; it stops when dropped.
pub struct OidcProvider {
    /// Its issuer URL.
    pub issuer: String,
    child: std::process::Child,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_dir() -> std::path::PathBuf {
    std::env::var_os("SESAME_TEST_NODE_DIR")
        .map(Into::into)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-node").into())
}

impl OidcProvider {
    /// Starts the provider for a relying party whose redirect URI is
    /// `rp_redirect`; `None` (after a message) when Node or the package is
    /// missing outside CI.
    pub async fn start(rp_redirect: &str) -> Option<Self> {
        let dir = node_dir();
        let installed = dir.join("node_modules/oidc-provider/package.json").exists();
        let node = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed || !node {
            let msg = "node or oidc-provider missing: run the suite with scripts/test, which installs them";
            assert!(!in_ci(), "{msg}");
            eprintln!("skipping: {msg}");
            return None;
        }
        // ES modules resolve packages from the script's own directory.
        let script = dir.join("oidc_provider.mjs");
        std::fs::write(&script, include_str!("../tests/support/oidc_provider.mjs"))
            .expect("script written");
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .env("RP_REDIRECT", rp_redirect)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        // The first line, once it listens; the rest is drained, so that
        // the provider's own log lines never meet a closed pipe.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines {}
        });
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), rx)
            .await
            .expect("the provider starts within 30 s")
            .expect("the first line");
        let ready: serde_json::Value = serde_json::from_str(&first).expect("the issuer line");
        Some(Self {
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            child,
        })
    }

    /// Signs `login` in through the provider's forms, starting at
    /// `authorization_url`; returns the URL the provider sends the browser
    /// back to (starting with `rp_prefix`).
    pub async fn log_in(&self, authorization_url: &str, login: &str, rp_prefix: &str) -> String {
        let client = crate::idp::browser();
        let mut cookies: BTreeMap<String, String> = BTreeMap::new();
        let base = reqwest::Url::parse(&self.issuer).expect("issuer");
        let mut next = (
            reqwest::Method::GET,
            authorization_url.to_owned(),
            Vec::new(),
        );
        for _ in 0..12 {
            let (method, url, form) = next;
            if url.starts_with(rp_prefix) {
                return url;
            }
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut req = client.request(method, &url).header("cookie", cookie);
            if !form.is_empty() {
                req = req.form(&form);
            }
            let resp = req.send().await.expect("provider answers");
            for set in resp.headers().get_all("set-cookie") {
                let pair = set
                    .to_str()
                    .expect("cookie")
                    .split(';')
                    .next()
                    .unwrap_or("");
                if let Some((k, v)) = pair.split_once('=') {
                    cookies.insert(k.trim().to_owned(), v.to_owned());
                }
            }
            if resp.status().is_redirection() {
                let location = resp.headers()["location"].to_str().expect("location");
                let url = base.join(location).expect("a location").to_string();
                next = (reqwest::Method::GET, url, Vec::new());
                continue;
            }
            let status = resp.status();
            let page = resp.text().await.expect("a page");
            assert!(status.is_success(), "{status}: {page}");
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("a form: {page}"));
            let target = base.join(action).expect("an action").to_string();
            let fields = if page.contains("name=\"login\"") {
                vec![
                    ("prompt".to_owned(), "login".to_owned()),
                    ("login".to_owned(), login.to_owned()),
                    ("password".to_owned(), "any".to_owned()),
                ]
            } else {
                vec![("prompt".to_owned(), "consent".to_owned())]
            };
            next = (reqwest::Method::POST, target, fields);
        }
        panic!("the provider never sent the browser back");
    }
}
