//! A headless Chromium driven over WebDriver, for the console's tests in a real browser.
//!
//! The client speaks the W3C WebDriver protocol to Debian's `chromedriver` over ureq (already
//! a dependency of ferry-cli), so the browser tests add no crate to the build. One [`Browser`]
//! is one chromedriver process, one Chromium with a fresh profile, and one session:
//!
//! * [`Browser::start`] fails the test, naming what to install, when chromium or chromedriver
//!   is missing (`scripts/install-test-deps`, which `.ci/run` runs, installs them);
//! * waits ([`Browser::wait`], [`Browser::wait_text`], [`Browser::wait_until`]) poll with a
//!   timeout and fail naming what was awaited, the page's address and text, with a screenshot;
//! * [`Browser::drag`] and [`Browser::drag_to`] press, move in steps and release the mouse with
//!   pointer actions, as a person drags (the builder's palette listens to pointer events);
//! * [`Browser::screenshot`] writes `<target>/console-screenshots/<test>/<name>.png`;
//! * every message Chromium logs at level SEVERE (a script error, a `console.error`, a failed
//!   request) is collected; [`Browser::finish`] fails the test if there was any that the test
//!   did not declare expected with [`Browser::allow_console_error`].
#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver uses for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait lasts unless the caller says otherwise: generous, because CI runs these
/// tests beside the rest of the suite on two cores; a wait that succeeds ends at once.
pub const WAIT: Duration = Duration::from_secs(30);
pub const WIDE: (u32, u32) = (1280, 800);
pub const NARROW: (u32, u32) = (400, 800);

/// Where a program is: on `PATH`, else where Debian's packages put it.
fn find_program(name: &str, debian: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain([PathBuf::from(debian)])
        .find(|p| p.is_file())
}

/// `<target dir>/console-screenshots/<test>`: the integration test's scratch directory is
/// `<target dir>/tmp`, which follows CARGO_TARGET_DIR when it is set.
pub fn screenshot_dir(test: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("console-screenshots")
        .join(test)
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver element reference.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Element {
    /// The reference to pass to [`Browser::exec`] as an argument.
    pub fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

pub struct Browser {
    // Field order is drop order: the session ends before its driver is killed and before the
    // profile directory is removed.
    session: String,
    agent: ureq::Agent,
    _driver: Driver,
    _profile: tempfile::TempDir,
    test: String,
    shots: PathBuf,
    driver_log: PathBuf,
    /// Every SEVERE message Chromium logged so far.
    errors: Vec<String>,
    /// Substrings of SEVERE messages the test expects (a refused sign-in's 401).
    allowed: Vec<String>,
    failures: usize,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at the given window size. `test` names the
    /// screenshot directory.
    pub fn start(test: &str, (width, height): (u32, u32)) -> Browser {
        let chromium = find_program("chromium", "/usr/bin/chromium").unwrap_or_else(|| {
            panic!(
                "chromium is not installed: the console's browser tests need Debian's `chromium` \
                 and `chromium-driver` packages (run scripts/install-test-deps, which .ci/run \
                 runs, or `apt-get install chromium chromium-driver`)"
            )
        });
        let chromedriver =
            find_program("chromedriver", "/usr/bin/chromedriver").unwrap_or_else(|| {
                panic!(
                    "chromedriver is not installed: the console's browser tests need Debian's \
                 `chromium-driver` package (run scripts/install-test-deps, which .ci/run runs, \
                 or `apt-get install chromium-driver`)"
                )
            });
        let shots = screenshot_dir(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        let profile = tempfile::tempdir().expect("profile directory");
        let driver_log = profile.path().join("chromedriver.log");
        let port = super::free_port();
        let driver = Driver(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", driver_log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display())),
        );
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            let ready = agent
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver ({}) did not answer on port {port} within 20 s; its log: {}",
                chromedriver.display(),
                driver_log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let user_data = profile.path().join("profile");
        // Without the background-networking flags Chromium keeps trying to reach Google's
        // services, which on a closed network is a stream of refused connections.
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--lang=en-US".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"implicit": 0, "pageLoad": 30000, "script": 30000},
        }}});
        let answer = post(&agent, &format!("{base}/session"), &caps).unwrap_or_else(|e| {
            panic!(
                "chromedriver could not start {}: {e}; chromedriver's log: {}",
                chromium.display(),
                std::fs::read_to_string(&driver_log).unwrap_or_default()
            )
        });
        let id = answer["sessionId"]
            .as_str()
            .expect("a WebDriver session id")
            .to_string();
        let mut browser = Browser {
            session: format!("{base}/session/{id}"),
            agent,
            _driver: driver,
            _profile: profile,
            test: test.to_string(),
            shots,
            driver_log,
            errors: Vec::new(),
            allowed: Vec::new(),
            failures: 0,
        };
        browser.set_window((width, height));
        println!("{test}: screenshots go to {}", browser.shots.display());
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.session);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => {
                let text = b.cloned().unwrap_or(json!({})).to_string();
                self.agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .send(text.as_str())
            }
        };
        read_answer(resp)
    }

    /// A WebDriver command that must succeed.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, path, Some(&body))
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e}"))
    }

    /// Sizes the window so that the page's viewport is `width` × `height` (the window's
    /// frame takes some of the window's own size, even headless).
    pub fn set_window(&mut self, (width, height): (u32, u32)) {
        let mut outer = (width as i64, height as i64);
        for _ in 0..2 {
            self.cmd(
                "POST",
                "/window/rect",
                json!({"width": outer.0, "height": outer.1, "x": 0, "y": 0}),
            );
            let inner = self.exec("return [window.innerWidth, window.innerHeight]", vec![]);
            let (w, h) = (
                inner[0].as_i64().unwrap_or(0),
                inner[1].as_i64().unwrap_or(0),
            );
            if (w, h) == (width as i64, height as i64) {
                return;
            }
            outer = (outer.0 + width as i64 - w, outer.1 + height as i64 - h);
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
        self.collect_log();
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Every element matching the CSS selector now, without waiting.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.cmd(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
            .collect()
    }

    fn displayed(&self, el: &Element) -> bool {
        self.call("GET", &format!("/element/{}/displayed", el.0), None)
            .is_ok_and(|v| v == true)
    }

    /// Waits until `what` returns Some; fails naming `describe` with the page's state.
    pub fn wait_until<T>(
        &mut self,
        describe: &str,
        timeout: Duration,
        mut what: impl FnMut(&mut Browser) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = what(self) {
                return v;
            }
            if start.elapsed() > timeout {
                self.fail(&format!(
                    "waited {:.0} s for {describe}",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fails the test with the page's address and text, after saving a screenshot.
    pub fn fail(&mut self, why: &str) -> ! {
        self.failures += 1;
        let shot = self.save_png(&format!("failure-{}", self.failures));
        let text = self
            .call(
                "POST",
                "/execute/sync",
                Some(&json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
            )
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let text: String = text.chars().take(2000).collect();
        self.collect_log();
        panic!(
            "{}: {why}\n  page: {}\n  screenshot: {}\n  console errors so far: {:?}\n  page text:\n{text}",
            self.test,
            self.url(),
            shot.display(),
            self.errors
        );
    }

    /// The first visible element matching `css`, waiting up to [`WAIT`].
    pub fn wait(&mut self, css: &str) -> Element {
        self.wait_for(css, WAIT)
    }

    pub fn wait_for(&mut self, css: &str, timeout: Duration) -> Element {
        self.wait_until(&format!("a visible `{css}`"), timeout, |b| {
            b.find_all(css).into_iter().find(|e| b.displayed(e))
        })
    }

    /// Waits until no element matches `css`.
    pub fn wait_gone(&mut self, css: &str) {
        self.wait_until(&format!("`{css}` to go away"), WAIT, |b| {
            b.find_all(css).is_empty().then_some(())
        })
    }

    /// The visible text of an element.
    pub fn text_of(&self, el: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", el.0), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The text of the first visible element matching `css`, waiting for it.
    pub fn text(&mut self, css: &str) -> String {
        let el = self.wait(css);
        self.text_of(&el)
    }

    /// Waits until some element matching `css` shows `text`; that element's whole text.
    pub fn wait_text(&mut self, css: &str, text: &str) -> String {
        self.wait_text_for(css, text, WAIT)
    }

    pub fn wait_text_for(&mut self, css: &str, text: &str, timeout: Duration) -> String {
        self.wait_until(&format!("`{css}` showing {text:?}"), timeout, |b| {
            b.find_all(css)
                .iter()
                .map(|e| b.text_of(e))
                .find(|t| t.contains(text))
        })
    }

    /// Text of the page's body as the user sees it.
    pub fn body_text(&self) -> String {
        self.exec("return document.body.innerText", vec![])
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&mut self, css: &str) {
        let el = self.wait(css);
        self.click_el(&el);
    }

    pub fn click_el(&mut self, el: &Element) {
        self.scroll_into_view(el);
        if let Err(e) = self.call(
            "POST",
            &format!("/element/{}/click", el.0),
            Some(&json!({})),
        ) {
            self.fail(&format!("clicking failed: {e}"));
        }
    }

    fn scroll_into_view(&self, el: &Element) {
        self.exec(
            "arguments[0].scrollIntoView({block: 'center', inline: 'center'})",
            vec![el.json()],
        );
    }

    /// Replaces the value of the input matching `css` by typing, as a person does (select
    /// all, delete, type), so that the page's change handlers see every keystroke.
    pub fn fill(&mut self, css: &str, text: &str) {
        let el = self.wait(css);
        self.fill_el(&el, text);
    }

    pub fn fill_el(&mut self, el: &Element, text: &str) {
        self.click_el(el);
        // Ctrl+A, release the modifier (the null key), Backspace, then the text.
        let keys = format!("\u{E009}a\u{E000}\u{E003}{text}");
        if let Err(e) = self.call(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(&json!({ "text": keys })),
        ) {
            self.fail(&format!("typing into an input failed: {e}"));
        }
    }

    /// Chooses `file` in the `<input type=file>` matching `css` (it may be hidden).
    pub fn choose_file(&mut self, css: &str, file: &Path) {
        let el = self.wait_until(&format!("a file input `{css}`"), WAIT, |b| {
            b.find_all(css).into_iter().next()
        });
        let path = std::fs::canonicalize(file).expect("file to upload exists");
        if let Err(e) = self.call(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(&json!({ "text": path.display().to_string() })),
        ) {
            self.fail(&format!("choosing {} failed: {e}", path.display()));
        }
    }

    /// Chooses the option with value `value` in the `<select>` matching `css`, waiting for
    /// the option (a page may fill a list from the API after it showed the box).
    pub fn select(&mut self, css: &str, value: &str) {
        self.wait_until(
            &format!("`{css}` to offer the option {value:?}"),
            WAIT,
            |b| {
                let el = b.find_all(css).into_iter().find(|e| b.displayed(e))?;
                // React tracks a select's value itself: set it through the native setter and
                // announce the change, as the browser does when a person picks an option.
                let chosen = b.exec(
                    "const s = arguments[0]; \
                     if (![...s.options].some(o => o.value === arguments[1])) return false; \
                     const set = Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, 'value').set; \
                     set.call(s, arguments[1]); \
                     s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                    vec![el.json(), json!(value)],
                );
                (chosen == true).then_some(())
            },
        );
    }

    /// The element's centre in viewport coordinates, after scrolling it into view.
    fn centre(&self, el: &Element) -> (f64, f64) {
        self.scroll_into_view(el);
        let r = self.exec(
            "const r = arguments[0].getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2];",
            vec![el.json()],
        );
        (
            r[0].as_f64().unwrap_or_default(),
            r[1].as_f64().unwrap_or_default(),
        )
    }

    /// Drags the element matching `from` onto the element matching `to`, with the mouse.
    pub fn drag(&mut self, from: &str, to: &str) {
        let src = self.wait(from);
        let dst = self.wait(to);
        let start = self.centre(&src);
        let end = self.centre(&dst);
        self.drag_points(start, end);
    }

    /// Drags the element matching `from` to the point (`x`, `y`) of the element matching
    /// `target`, measured from its top left corner.
    pub fn drag_to(&mut self, from: &str, target: &str, (x, y): (f64, f64)) {
        let src = self.wait(from);
        let dst = self.wait(target);
        self.scroll_into_view(&dst);
        let r = self.exec(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top];",
            vec![dst.json()],
        );
        let end = (
            r[0].as_f64().unwrap_or_default() + x,
            r[1].as_f64().unwrap_or_default() + y,
        );
        let start = self.centre(&src);
        self.drag_points(start, end);
    }

    /// Press at `from`, move there to `to` in steps (drag libraries start a drag only after
    /// the pointer moved a few pixels with the button down), release.
    pub fn drag_points(&mut self, from: (f64, f64), to: (f64, f64)) {
        const STEPS: usize = 8;
        let point = |x: f64, y: f64, ms: u64| {
            json!({"type": "pointerMove", "duration": ms, "origin": "viewport",
                   "x": x.round() as i64, "y": y.round() as i64})
        };
        let mut actions = vec![
            point(from.0, from.1, 0),
            json!({"type": "pointerDown", "button": 0}),
            json!({"type": "pause", "duration": 50}),
        ];
        for i in 1..=STEPS {
            let f = i as f64 / STEPS as f64;
            actions.push(point(
                from.0 + (to.0 - from.0) * f,
                from.1 + (to.1 - from.1) * f,
                30,
            ));
        }
        actions.push(json!({"type": "pause", "duration": 50}));
        actions.push(json!({"type": "pointerUp", "button": 0}));
        let body = json!({"actions": [{
            "type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": actions,
        }]});
        if let Err(e) = self.call("POST", "/actions", Some(&body)) {
            self.fail(&format!("dragging from {from:?} to {to:?} failed: {e}"));
        }
        let _ = self.call("DELETE", "/actions", None);
    }

    /// Signs in on the console at `base` (`http://127.0.0.1:<api port>/`) and waits for the
    /// navigation to show.
    pub fn sign_in(&mut self, base: &str, name: &str, password: &str) {
        // The console asks GET /api/v1/session whether it is signed in, which answers 401 before
        // sign-in, and Chromium logs every 4xx answer as a failed resource. Expected until the
        // user is in; after that a 401 there (a lost session) is an error again.
        let probe =
            "/api/v1/session - Failed to load resource: the server responded with a status of 401";
        let already = self.allowed.iter().any(|a| a == probe);
        self.allow_console_error(probe);
        self.goto(base);
        self.fill("input[name=name]", name);
        self.fill("input[name=password]", password);
        self.click("form button[type=submit]");
        self.wait("a[data-nav=overview]");
        self.collect_log();
        if !already {
            self.allowed.retain(|a| a != probe);
        }
    }

    /// Opens a page with its navigation link.
    pub fn nav(&mut self, page: &str) {
        self.click(&format!("a[data-nav={page}]"));
        self.wait_until(&format!("the address to show page '{page}'"), WAIT, |b| {
            b.url().contains(&format!("#/{page}")).then_some(())
        });
    }

    /// Whether the page is wider than the window (a horizontal scroll bar on the body).
    pub fn overflow(&self) -> Option<(i64, i64)> {
        let v = self.exec(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        );
        let (scroll, inner) = (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0));
        (scroll > inner).then_some((scroll, inner))
    }

    fn save_png(&self, name: &str) -> PathBuf {
        let path = self.shots.join(format!("{name}.png"));
        if let Ok(v) = self.call("GET", "/screenshot", None)
            && let Some(bytes) = v.as_str().and_then(base64_decode)
        {
            let _ = std::fs::write(&path, bytes);
        }
        path
    }

    /// Saves a screenshot of the window as `<name>.png` in this test's directory.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = self.save_png(name);
        assert!(
            path.is_file(),
            "{}: no screenshot written to {}",
            self.test,
            path.display()
        );
        self.collect_log();
        path
    }

    /// A SEVERE message containing `fragment` is expected (a refused sign-in's 401).
    pub fn allow_console_error(&mut self, fragment: &str) {
        self.allowed.push(fragment.to_string());
    }

    /// Reads the browser's log since the last read into the collected errors.
    pub fn collect_log(&mut self) {
        // chromedriver keeps its legacy log endpoint in W3C mode; entries are returned once.
        let Ok(entries) = self.call("POST", "/se/log", Some(&json!({"type": "browser"}))) else {
            return;
        };
        for e in entries.as_array().into_iter().flatten() {
            if e["level"] == "SEVERE" {
                let msg = e["message"].as_str().unwrap_or_default().to_string();
                if !self.allowed.iter().any(|a| msg.contains(a.as_str())) {
                    self.errors.push(msg);
                }
            }
        }
    }

    /// The SEVERE messages not allowed, so far.
    pub fn console_errors(&mut self) -> Vec<String> {
        self.collect_log();
        self.errors.clone()
    }

    /// Forgets the errors collected so far (after the test looked at them itself).
    pub fn clear_console_errors(&mut self) {
        self.collect_log();
        self.errors.clear();
    }

    /// Ends the session; fails the test if the browser logged an error it did not expect.
    pub fn finish(mut self) {
        let errors = self.console_errors();
        assert!(
            errors.is_empty(),
            "{}: the browser logged errors:\n  {}",
            self.test,
            errors.join("\n  ")
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; the driver is killed after this (field order) either way.
        let _ = self.call("DELETE", "", None);
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Value, String> {
    read_answer(
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_str()),
    )
}

/// A WebDriver answer's `value`, or its error and message.
fn read_answer(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Value, String> {
    let mut resp = resp.map_err(|e| format!("no answer from chromedriver: {e}"))?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| format!("unreadable answer from chromedriver: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    if status.is_success() {
        Ok(v["value"].clone())
    } else {
        Err(format!(
            "{} ({}): {}",
            v["value"]["error"].as_str().unwrap_or("error"),
            status.as_u16(),
            v["value"]["message"].as_str().unwrap_or(&text)
        ))
    }
}

/// Standard base64 (screenshots arrive as such); None on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
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
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().take_while(|&c| c != b'=').collect();
        if data.len() < 2 {
            return None;
        }
        let mut acc = 0u32;
        for &c in &data {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - data.len() as u32);
        let decoded = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&decoded[..data.len() - 1]);
    }
    Some(out)
}
