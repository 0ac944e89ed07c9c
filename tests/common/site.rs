//! A running `registrar serve` for the self-service tests: a slapd holding people with
//! passwords, a config directory whose `self_service` section signs in against it, a
//! store applied once (so mappings hold names), and the serve process on a free loopback
//! port. Also a minimal HTTP/1.1 client for the requests a browser cannot make (any
//! header, any method) and a headless Chromium over WebDriver (`chromedriver`).
//! Included by `tests/serve.rs` as a module of its own (`#[path]`), so that no other test
//! binary builds the WebDriver client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::ldap_fixture::{users_ldif, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD};
use crate::common::slapd::{Options, Slapd};
use crate::common::store::TestStore;
use crate::common::{registrar, stderr};

/// The environment variable the config names in `password_env`.
pub const PASSWORD_ENV: &str = "REGISTRAR_TEST_LDAP_PASSWORD";
/// The lookup API's token in the tests (the tokens file lists its SHA-256).
pub const API_TOKEN: &str = "im-gateway-token-7f3a";
/// The protected principal's login (a kiosk account in `policy.protected_principals`).
pub const KIOSK: &str = "kiosk";
/// How long to wait for a process to come up.
const PATIENCE: Duration = Duration::from_secs(30);

/// `login`'s password in the test directory.
pub fn password_of(login: &str) -> String {
    format!("pw-{login}-S3cret")
}

/// The DN of `login`.
pub fn dn_of(login: &str) -> String {
    format!("uid={login},{PEOPLE_DN}")
}

/// A directory, a config, a store and a `serve` on them.
pub struct Site {
    pub dir: tempfile::TempDir,
    /// The directory: kept running as long as the site.
    pub slapd: Slapd,
    pub store: TestStore,
    serve: Option<Child>,
    log: PathBuf,
    /// `HOST:PORT` serve listens on.
    pub address: String,
}

impl Site {
    /// Users `user1` to `user3` and the kiosk account, each with a password;
    /// `self_service_extra` is added under the `self_service` section (say a
    /// `trusted_header`).
    pub fn start(self_service_extra: &str) -> Site {
        let slapd = Slapd::start(Options::default());
        slapd.load_ldif(&users_ldif(3));
        slapd.load_ldif(&format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: {KIOSK}\ncn: Lobby Kiosk\nsn: Kiosk\n\
             displayName: Lobby Kiosk\n\n",
            dn_of(KIOSK)
        ));
        let mut passwords = String::new();
        for login in ["user1", "user2", "user3", KIOSK] {
            passwords.push_str(&format!(
                "dn: {}\nchangetype: modify\nreplace: userPassword\nuserPassword: {}\n\n",
                dn_of(login),
                password_of(login)
            ));
        }
        slapd.modify(&passwords);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let tokens = dir.path().join("api-tokens");
        let digest: String = Sha256::digest(API_TOKEN)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(&tokens, format!("# the IM gateway\n{digest} gateway\n")).unwrap();
        std::fs::write(
            config.join("registrar.yaml"),
            format!(
                "sources:\n  - name: people\n    anchor: entryUUID\n    ldap:\n      url: {url}\n      \
                 bind_dn: {SERVICE_DN}\n      password_env: {PASSWORD_ENV}\n      \
                 base_dn: {PEOPLE_DN}\n      filter: \"(objectClass=inetOrgPerson)\"\n\
                 accounts:\n  profile:\n    display_name: \"{{displayName}}\"\n\
                 mappings:\n  - name: xmpp-from-mail\n    protocol: xmpp\n    value: \"{{mail|lower|local_part}}\"\n\
                 exclusions:\n  - name: reserved\n    protocol: xmpp\n    im_name: \"^(admin|root)$\"\n\
                 protocols:\n  - name: xmpp\n    max_length: 40\n    allowed: \"^[A-Za-z0-9._-]+$\"\n\
                 policy:\n  protected_principals:\n    - {kiosk}\n\
                 self_service:\n  source: people\n  login_attribute: uid\n  protocols: [xmpp, aim]\n  \
                 max_per_account: 3\n  api_tokens_file: {tokens}\n{self_service_extra}",
                url = slapd.url(),
                kiosk = dn_of(KIOSK),
                tokens = tokens.display(),
            ),
        )
        .unwrap();
        let store = TestStore::fresh();
        let log = dir.path().join("serve.log");
        let mut site = Site {
            dir,
            slapd,
            store,
            serve: None,
            log,
            address: String::new(),
        };
        let applied = site.run(&["apply", "--auto-approve"]);
        assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
        site.serve(&[]);
        site
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// Runs registrar with `args` on the site's config and store.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        registrar(&self.config(), &self.store.argument())
            .args(args)
            .env(PASSWORD_ENV, SERVICE_PASSWORD)
            .output()
            .unwrap()
    }

    /// Starts `serve --listen 127.0.0.1:0` with `extra` arguments and waits for its
    /// address.
    pub fn serve(&mut self, extra: &[&str]) {
        self.stop();
        let log = std::fs::File::create(&self.log).unwrap();
        let child = registrar(&self.config(), &self.store.argument())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env(PASSWORD_ENV, SERVICE_PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.serve = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if let Some(at) = log.find("listening on ") {
                let rest = &log[at + "listening on ".len()..];
                let url = rest.split_whitespace().next().unwrap();
                self.address = url.split_once("://").unwrap().1.to_string();
                return;
            }
            if let Some(status) = self.serve.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "serve did not listen:\n{log}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What serve has written to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops serve with SIGTERM and waits for it; its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.serve.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `state show --format json`.
    pub fn state(&self) -> serde_json::Value {
        let output = self.run(&["state", "show", "--format", "json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut child) = self.serve.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP response, as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercase, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `address` (`Connection: close`), with `headers` and `body`
/// as given.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// An HTTP/1.1 response's status, headers and body (`Content-Length` or chunked).
pub fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A headless Chromium driven over WebDriver: `chromedriver` on a free loopback port,
/// and a session on it.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// chromedriver, installed by ci/test (Debian's `chromium-driver`).
fn chromedriver() -> PathBuf {
    crate::common::slapd::find_program("chromedriver", &["/usr/bin/chromedriver"]).expect(
        "chromedriver not found: install it with apt-get install -y chromium-driver (ci/test does this)",
    )
}

impl Browser {
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver())
            .args([
                format!("--port={port}"),
                "--allowed-ips=127.0.0.1".to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            serde_json::json!({
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--no-proxy-server", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1000,760",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session on chromedriver");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.client
            .find(fantoccini::Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Types `value` into the field `id` (cleared first).
    pub async fn fill(&self, id: &str, value: &str) {
        let field = self
            .client
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no field #{id}: {e}"));
        field.clear().await.unwrap();
        if !value.is_empty() {
            field.send_keys(value).await.unwrap();
        }
    }

    /// Clicks the button matching the CSS `selector` and waits for the next page.
    pub async fn click(&self, selector: &str) {
        let button = self
            .client
            .find(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"));
        self.navigate(selector, async {
            button.click().await.unwrap();
        })
        .await;
    }

    /// Does `action` (a click, keys typed: `what`) and waits for the page it leads to:
    /// until the old page's root is gone and the new one has a body.
    pub async fn navigate(&self, what: &str, action: impl std::future::Future<Output = ()>) {
        let old_root = self
            .client
            .find(fantoccini::Locator::Css("html"))
            .await
            .unwrap();
        action.await;
        let deadline = Instant::now() + PATIENCE;
        while old_root.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{what}: no new page");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(fantoccini::Locator::Css("body"))
            .await
            .unwrap();
    }

    /// A screenshot of the page: checks that it is a PNG of the window's size with a
    /// real page in it (many colours, not one blank fill), writes it to
    /// `$REGISTRAR_SCREENSHOTS/<name>.png` when that is set (the README's pictures), and
    /// returns its size.
    pub async fn screenshot(&self, name: &str) -> (u32, u32) {
        let png = self.client.screenshot().await.unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        let pixels = &pixels[..frame.buffer_size()];
        let step = frame.color_type.samples();
        let colours: std::collections::HashSet<&[u8]> = pixels.chunks(step).collect();
        assert!(
            frame.width >= 800 && frame.height >= 500,
            "{name}: a {}x{} screenshot",
            frame.width,
            frame.height
        );
        assert!(
            colours.len() >= 8,
            "{name}: the screenshot holds {} colours: a blank page",
            colours.len()
        );
        if let Some(dir) = std::env::var_os("REGISTRAR_SCREENSHOTS") {
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), &png).unwrap();
        }
        (frame.width, frame.height)
    }

    /// Ends the WebDriver session; chromedriver ends when the browser is dropped.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Chromium, installed by ci/test (package `chromium`).
fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "chromium not found: install it with apt-get install -y chromium (ci/test does this)",
        )
        .to_string()
}
