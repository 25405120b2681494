//! A thin layer over fantoccini: tabs of one headless Chromium session (chromedriver),
//! waits that poll the page with a bound (a failing step names what it waited for), and
//! screenshots under `target/e2e/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The bound of every wait in the page.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// One browser session with its tabs.
pub(crate) struct Browser {
    client: Client,
    current: Option<WindowHandle>,
    shots: PathBuf,
    taken: usize,
}

/// A tab of the session.
#[derive(Clone)]
pub(crate) struct Tab(WindowHandle);

impl Browser {
    /// Opens a session on the chromedriver at `webdriver`, driving `chromium` headless.
    pub(crate) async fn open(
        webdriver: &str,
        chromium: &str,
        shots: PathBuf,
    ) -> Result<Self, String> {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    // Background tabs keep their timers: every tab of the test is "visible".
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(webdriver)
            .await
            .map_err(|e| format!("no browser session from {webdriver}: {e}"))?;
        std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
        Ok(Browser {
            client,
            current: None,
            shots,
            taken: 0,
        })
    }

    /// The tab the session opened with, at `url`.
    pub(crate) async fn first_tab(&mut self, url: &str) -> Result<Tab, String> {
        let handle = self.client.window().await.map_err(err("the first tab"))?;
        self.current = Some(handle.clone());
        self.client.goto(url).await.map_err(err(url))?;
        Ok(Tab(handle))
    }

    /// A new tab at `url`.
    pub(crate) async fn new_tab(&mut self, url: &str) -> Result<Tab, String> {
        let opened = self
            .client
            .new_window(true)
            .await
            .map_err(err("a new tab"))?;
        let tab = Tab(opened.handle);
        self.on(&tab).await?;
        self.client.goto(url).await.map_err(err(url))?;
        Ok(tab)
    }

    /// Makes `tab` the one the next commands act on.
    pub(crate) async fn on(&mut self, tab: &Tab) -> Result<(), String> {
        if self.current.as_ref() != Some(&tab.0) {
            self.client
                .switch_to_window(tab.0.clone())
                .await
                .map_err(err("switching tabs"))?;
            self.current = Some(tab.0.clone());
        }
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the current tab.
    pub(crate) async fn eval(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client.execute(script, args).await.map_err(err(script))
    }

    /// Polls `script` until `done` holds for its value; fails after [`WAIT`] with `what`.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        script: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.eval(script, vec![]).await?;
            if done(&last) {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "timed out waiting until {what} (last value: {last})"
        ))
    }

    /// Waits until the text of the first element matching `selector` satisfies `done`.
    pub(crate) async fn wait_text(
        &self,
        selector: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent.trim() : null;",
            json!(selector)
        );
        self.wait_script_text(selector, &script, done).await
    }

    /// Waits until the text of the last element matching `selector` satisfies `done`.
    pub(crate) async fn wait_last_text(
        &self,
        selector: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let script = format!(
            "const e = [...document.querySelectorAll({})].pop(); \
             return e ? e.textContent.trim() : null;",
            json!(selector)
        );
        self.wait_script_text(selector, &script, done).await
    }

    async fn wait_script_text(
        &self,
        selector: &str,
        script: &str,
        done: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let value = self
            .wait_for(
                &format!("`{selector}` shows the expected text"),
                script,
                |v| v.as_str().is_some_and(&done),
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the text of some element matching `selector` contains `needle`.
    pub(crate) async fn wait_any_text(&self, selector: &str, needle: &str) -> Result<(), String> {
        let script = format!(
            "return [...document.querySelectorAll({})].some(e => e.textContent.includes({}));",
            json!(selector),
            json!(needle)
        );
        self.wait_for(
            &format!("some `{selector}` shows `{needle}`"),
            &script,
            |v| v == &json!(true),
        )
        .await
        .map(drop)
    }

    /// Waits until an element matches `selector`.
    pub(crate) async fn wait_present(&self, selector: &str) -> Result<(), String> {
        let script = format!(
            "return document.querySelector({}) !== null;",
            json!(selector)
        );
        self.wait_for(&format!("`{selector}` exists"), &script, |v| {
            v == &json!(true)
        })
        .await
        .map(drop)
    }

    /// Clicks the first element matching `selector`.
    pub(crate) async fn click(&self, selector: &str) -> Result<(), String> {
        self.wait_present(selector).await?;
        let element = self
            .client
            .find(Locator::Css(selector))
            .await
            .map_err(err(selector))?;
        element.click().await.map_err(err(selector))
    }

    /// Replaces the value of the input matching `selector` by typing `text` (key events,
    /// so the page sees input events as from a person).
    pub(crate) async fn type_into(&self, selector: &str, text: &str) -> Result<(), String> {
        self.wait_present(selector).await?;
        let element = self
            .client
            .find(Locator::Css(selector))
            .await
            .map_err(err(selector))?;
        element.clear().await.map_err(err(selector))?;
        element.send_keys(text).await.map_err(err(selector))
    }

    /// Resizes the window (the phone-sized screenshot).
    pub(crate) async fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(err("resizing"))
    }

    /// Saves a screenshot of the current tab as `NN-name.png`; returns its path.
    pub(crate) async fn screenshot(&mut self, name: &str) -> Result<PathBuf, String> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(err("a screenshot"))?;
        self.taken += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Ends the session (closes the browser).
    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}
