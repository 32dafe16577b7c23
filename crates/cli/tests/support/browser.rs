//! A real headless Chromium driven through chromedriver's W3C WebDriver
//! protocol (plain JSON over HTTP on loopback): enough to log in, click,
//! type, read the page and take screenshots. Both processes are stopped
//! when the [`Browser`] is dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{http_json, PATIENCE};

/// The W3C name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|n| {
            ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
                .iter()
                .map(move |d| Path::new(d).join(n))
        })
        .find(|p| p.exists())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (off CI only)
    /// when they are not installed.
    pub fn start() -> Option<Browser> {
        let (Some(chromium), Some(driver_bin)) = (
            find_binary(&["chromium", "chromium-browser", "chrome"]),
            find_binary(&["chromedriver"]),
        ) else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "chromium and chromedriver are missing (scripts/test installs them)"
            );
            eprintln!("no chromium/chromedriver: skipped");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if std::net::TcpStream::connect(&addr).is_ok() {
                let (status, body) = http_json(&addr, "GET", "/status", None, &[]);
                if status == 200 && body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let (status, body) = http_json(&addr, "POST", "/session", Some(&caps.to_string()), &[]);
        let mut driver = driver;
        if status != 200 {
            let _ = driver.kill();
            let _ = driver.wait();
            panic!("chromedriver refused the session: {body}");
        }
        let session = body["value"]["sessionId"].as_str().unwrap().to_string();
        Some(Browser {
            driver,
            addr,
            session,
            _profile: profile,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = body.map(|b| b.to_string());
        let (status, answer) = http_json(&self.addr, method, &path, body.as_deref(), &[]);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching a CSS selector, waiting for it to appear.
    pub fn find(&self, css: &str) -> String {
        self.wait_for(&format!("an element {css}"), || self.try_find(css))
    }

    pub fn try_find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let body = json!({"using": "css selector", "value": css}).to_string();
        let (status, answer) = http_json(&self.addr, "POST", &path, Some(&body), &[]);
        (status == 200)
            .then(|| answer["value"][ELEMENT].as_str().map(String::from))
            .flatten()
    }

    pub fn count(&self, css: &str) -> usize {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map_or(0, |a| a.len())
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The visible text of the page's main part.
    pub fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `f` until it gives a value (at most [`PATIENCE`]).
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot_to(&std::env::temp_dir().join("haven-failed.png"));
                panic!(
                    "timed out waiting for {what}; page {} (screenshot {})",
                    self.url(),
                    shot.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the text of `css` contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait_for(&format!("{needle:?} in {css}"), || {
            let id = self.try_find(css)?;
            let path = format!("/session/{}/element/{id}/text", self.session);
            let (status, answer) = http_json(&self.addr, "GET", &path, None, &[]);
            let text = answer["value"].as_str().unwrap_or_default().to_string();
            (status == 200 && text.contains(needle)).then_some(text)
        })
    }

    /// The element an XPath expression finds, waiting for it to appear.
    pub fn find_xpath(&self, xpath: &str) -> String {
        self.wait_for(&format!("an element {xpath}"), || {
            let found = self.script(
                "return document.evaluate(arguments[0], document, null, \
                   XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;",
                json!([xpath]),
            );
            found[ELEMENT].as_str().map(String::from)
        })
    }

    /// Clicks an element found by [`Browser::find_xpath`].
    pub fn click_element(&self, id: &str) {
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Finds (XPath) and clicks an element of a page that may be replacing
    /// it meanwhile (a live refresh): tries again until a click lands.
    pub fn click_xpath(&self, xpath: &str) {
        self.wait_for(&format!("a click on {xpath}"), || {
            let id = self.find_xpath(xpath);
            let path = format!("/session/{}/element/{id}/click", self.session);
            let (status, _) = http_json(&self.addr, "POST", &path, Some("{}"), &[]);
            (status == 200).then_some(())
        })
    }

    /// Resizes the browser's window (CSS pixels).
    pub fn set_window(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Presses and releases each key in turn, on whatever has the focus
    /// (WebDriver key codes: [`Browser::TAB`], [`Browser::ENTER`],
    /// [`Browser::ESCAPE`], or plain characters).
    pub fn press(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    pub const TAB: &'static str = "\u{E004}";
    pub const ENTER: &'static str = "\u{E007}";
    pub const ESCAPE: &'static str = "\u{E00C}";

    /// Saves a PNG screenshot; returns its path.
    pub fn screenshot_to(&self, path: &Path) -> PathBuf {
        let path_q = format!("/session/{}/screenshot", self.session);
        let (status, answer) = http_json(&self.addr, "GET", &path_q, None, &[]);
        if status == 200 {
            if let Some(data) = answer["value"].as_str() {
                if let Some(bytes) = base64(data) {
                    let _ = std::fs::write(path, bytes);
                }
            }
        }
        path.to_path_buf()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http_json(&self.addr, "DELETE", &path, None, &[]);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 decoding (screenshots), without a dependency.
fn base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        for i in 0..take {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}
