//! `registrar serve`, the self-service page and the lookup API, end to end: a real slapd
//! holding the people (each with a password), the binary serving on loopback, and a
//! headless Chromium driven over WebDriver (Debian's `chromium-driver`) for what a person
//! does; a plain HTTP client for what a browser cannot send (any header, a forged form,
//! the API's bearer tokens). Every page a test visits is screenshotted and the picture
//! checked (`Browser::screenshot`); `REGISTRAR_SCREENSHOTS=DIR` keeps them (the README's).

mod common;
#[path = "common/site.rs"]
mod site;

use fantoccini::key::Key;
use fantoccini::Locator;

use common::{assert_one_line_error, stderr};
use site::{dn_of, password_of, request, Browser, Site, API_TOKEN, KIOSK};

/// Runs a browser test's steps on a runtime of their own. The site is made and dropped
/// outside it: its store may be a PostgreSQL database, whose sync client refuses to
/// start inside a runtime.
fn in_browser<F: std::future::Future<Output = ()>>(steps: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(steps)
}

/// Checks that every visible field and button of the page can be named by assistive
/// technology: a field by its `<label for>`, a button by its text or `aria-label`.
async fn assert_labelled(browser: &Browser) {
    let client = &browser.client;
    let fields = client
        .find_all(Locator::Css("input:not([type=hidden]), select"))
        .await
        .unwrap();
    assert!(!fields.is_empty());
    for field in fields {
        let id = field.attr("id").await.unwrap().expect("a field with an id");
        let label = client
            .find(Locator::Css(&format!("label[for='{id}']")))
            .await;
        assert!(label.is_ok(), "field #{id} has no label");
    }
    for button in client.find_all(Locator::Css("button")).await.unwrap() {
        let named = button.text().await.unwrap();
        let aria = button.attr("aria-label").await.unwrap().unwrap_or_default();
        assert!(
            !named.trim().is_empty() || !aria.is_empty(),
            "a button without a name"
        );
    }
}

/// Signs `login` in through the form.
async fn sign_in(browser: &Browser, site: &Site, login: &str, password: &str) {
    browser.client.goto(&site.url("/sign-in")).await.unwrap();
    browser.fill("login", login).await;
    browser.fill("password", password).await;
    browser.click("form[action='/sign-in'] button").await;
}

/// Registers `name` on `protocol` through the page's form.
async fn register(browser: &Browser, protocol: &str, name: &str) {
    browser
        .client
        .find(Locator::Css("#protocol"))
        .await
        .unwrap()
        .select_by_value(protocol)
        .await
        .unwrap();
    browser.fill("im_name", name).await;
    browser.click("form[action='/register'] button").await;
}

/// The self registrations of `dn` in `state show --format json`, as `protocol/name`.
fn self_names(site: &Site, dn: &str) -> Vec<String> {
    let state = site.state();
    let anchors: Vec<String> = state["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["dn"].as_str().unwrap().eq_ignore_ascii_case(dn))
        .map(|a| a["anchor"].as_str().unwrap().to_string())
        .collect();
    let mut names: Vec<String> = state["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "self" && anchors.iter().any(|a| r["account"] == a.as_str()))
        .map(|r| {
            format!(
                "{}/{}",
                r["protocol"].as_str().unwrap(),
                r["im_name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

/// The value of the sample `series` in `/metrics`.
fn metric(site: &Site, series: &str) -> f64 {
    common::sample(
        &request(&site.address, "GET", "/metrics", &[], "").body,
        series,
    )
}

#[test]
fn an_employee_signs_in_registers_a_name_sees_it_everywhere_and_removes_it() {
    let site = Site::start("");
    in_browser(async {
        let browser = Browser::start().await;
        let client = &browser.client;

        // No session: the page sends the browser to sign in.
        client.goto(&site.url("/")).await.unwrap();
        assert!(client.current_url().await.unwrap().path() == "/sign-in");
        assert!(browser
            .text()
            .await
            .contains("Sign in with your directory login"));
        browser.screenshot("sign-in").await;

        // A wrong password, then an empty one: both refused, and the empty one never binds.
        sign_in(&browser, &site, "user1", "not-the-password").await;
        assert!(browser.text().await.contains("Wrong login or password."));
        browser.screenshot("sign-in-failed").await;
        sign_in(&browser, &site, "user1", "").await;
        let text = browser.text().await;
        assert!(
            text.contains("Enter your password: an empty one proves nobody."),
            "{text}"
        );
        assert_eq!(
            metric(&site, "registrar_serve_sign_ins_total{outcome=\"failed\"}"),
            1.0
        );

        // Every field has its label, and the form works from the keyboard alone: the
        // login has the focus, Tab goes to the password, Enter signs in.
        client.goto(&site.url("/sign-in")).await.unwrap();
        assert_labelled(&browser).await;
        let typed = format!("user1{}{}{}", Key::Tab, password_of("user1"), Key::Enter);
        browser
            .navigate("the sign-in typed", async {
                let focused = client.active_element().await.unwrap();
                focused.send_keys(&typed).await.unwrap();
            })
            .await;

        // Signed in: whose account it is stands above the forms, with the mapped name.
        assert_eq!(client.current_url().await.unwrap().path(), "/");
        assert_labelled(&browser).await;
        let text = browser.text().await;
        assert!(
            text.contains(&format!(
                "This account belongs to User1 Family1 ({})",
                dn_of("user1")
            )),
            "{text}"
        );
        assert!(text.contains("user1") && text.contains("the directory (mapping xmpp-from-mail)"));
        browser.screenshot("account").await;

        // Register a name: it is on the page and in the store, as the person's self
        // registration.
        register(&browser, "xmpp", "Alice.Chat").await;
        let text = browser.text().await;
        assert!(
            text.contains("Registered.") && text.contains("Alice.Chat"),
            "{text}"
        );
        assert_eq!(self_names(&site, &dn_of("user1")), ["xmpp/Alice.Chat"]);
        browser.screenshot("registered").await;

        // A hostile name is text: no script runs, the title stays.
        let hostile = "<script>document.title='pwned'</script>";
        register(&browser, "aim", hostile).await;
        assert!(browser.text().await.contains(hostile));
        assert_eq!(client.title().await.unwrap(), "Your IM names · registrar");
        assert!(client
            .source()
            .await
            .unwrap()
            .contains("&lt;script&gt;document.title="));

        // Someone else's managed name: refused, without saying whose it is.
        register(&browser, "xmpp", "USER2").await;
        let text = browser.text().await;
        assert!(
            text.contains("The xmpp name \"USER2\" is already taken."),
            "{text}"
        );
        assert!(
            !text.contains("User2 Family2") && !text.contains("uid=user2"),
            "{text}"
        );
        browser.screenshot("taken").await;
        // A reserved name, a name the protocol's rule refuses, and the limit.
        register(&browser, "xmpp", "admin").await;
        assert!(browser
            .text()
            .await
            .contains("The xmpp name \"admin\" is reserved."));
        register(&browser, "xmpp", "has space").await;
        assert!(browser
            .text()
            .await
            .contains("The xmpp name \"has space\" contains white space."));
        register(&browser, "xmpp", "slash/name").await;
        assert!(browser
            .text()
            .await
            .contains("does not match the protocol's allowed names"));
        register(&browser, "xmpp", "third.name").await;
        register(&browser, "xmpp", "fourth.name").await;
        assert!(browser
            .text()
            .await
            .contains("You already hold 3 names you registered yourself, the most allowed."));
        assert_eq!(
            self_names(&site, &dn_of("user1")),
            [
                format!("aim/{hostile}"),
                "xmpp/Alice.Chat".to_string(),
                "xmpp/third.name".to_string()
            ]
        );

        // A forged CSRF token changes nothing.
        client
            .execute(
                "document.querySelector(\"form[action='/remove'] input[name=csrf]\").value = 'forged';",
                vec![],
            )
            .await
            .unwrap();
        browser.click("form[action='/remove'] button").await;
        assert!(browser
            .text()
            .await
            .contains("This form expired or did not come from this site"));
        browser.screenshot("forged-form").await;
        assert_eq!(self_names(&site, &dn_of("user1")).len(), 3);

        // Remove one: gone from the page and the store; the managed name has no button.
        client.goto(&site.url("/")).await.unwrap();
        browser
            .click("button[aria-label='Remove xmpp name Alice.Chat']")
            .await;
        let text = browser.text().await;
        assert!(
            text.contains("Removed.") && !text.contains("Alice.Chat"),
            "{text}"
        );
        assert_eq!(self_names(&site, &dn_of("user1")).len(), 2);
        assert!(client
            .find(Locator::Css("button[aria-label='Remove xmpp name user1']"))
            .await
            .is_err());

        // The run history says who, what and from where.
        let status = site.run(&["status", "--format", "json"]);
        let history = String::from_utf8_lossy(&status.stdout).to_string();
        assert!(
            history.contains("serve register") && history.contains("serve remove"),
            "{history}"
        );
        assert!(
            history.contains(&format!(
                "xmpp name \\\"Alice.Chat\\\" removed by {} (signed in as \\\"user1\\\") from 127.0.0.1",
                dn_of("user1")
            )),
            "{history}"
        );

        // Signed out, the page is gone again.
        browser.click("form.sign-out button").await;
        client.goto(&site.url("/")).await.unwrap();
        assert_eq!(client.current_url().await.unwrap().path(), "/sign-in");
        browser.close().await;
        assert!(!site.log().contains(&password_of("user1")));
    });
}

#[test]
fn a_protected_principal_registers_nothing_and_failed_sign_ins_lock_out() {
    let site = Site::start("");
    in_browser(async {
        let browser = Browser::start().await;
        let client = &browser.client;

        sign_in(&browser, &site, KIOSK, &password_of(KIOSK)).await;
        let text = browser.text().await;
        assert!(
            text.contains(&format!(
                "This account belongs to Lobby Kiosk ({})",
                dn_of(KIOSK)
            )),
            "{text}"
        );
        assert!(
            text.contains("No names can be registered to this account"),
            "{text}"
        );
        assert!(client
            .find(Locator::Css("form[action='/register']"))
            .await
            .is_err());
        browser.screenshot("protected").await;

        // The server refuses it too, form or no form.
        let cookie = client.get_named_cookie("registrar_session").await.unwrap();
        let csrf = client
            .find(Locator::Css("form.sign-out input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
        let session = format!("registrar_session={}", cookie.value());
        let refused = request(
            &site.address,
            "POST",
            "/register",
            &[
                ("Cookie", &session),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("csrf={csrf}&protocol=xmpp&im_name=kiosk.chat"),
        );
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("protected principal"));
        assert!(self_names(&site, &dn_of(KIOSK)).is_empty());
        browser.click("form.sign-out button").await;

        // Five wrong passwords lock the login: the sixth attempt, right or not, is refused
        // with a page that says so.
        for _ in 0..5 {
            sign_in(&browser, &site, "user3", "guess").await;
            assert!(browser.text().await.contains("Wrong login or password."));
        }
        sign_in(&browser, &site, "user3", &password_of("user3")).await;
        let text = browser.text().await;
        assert!(text.contains("Sign-in locked"), "{text}");
        assert!(text.contains("Too many failed sign-ins"), "{text}");
        browser.screenshot("locked").await;
        assert_eq!(
            metric(&site, "registrar_serve_sign_ins_total{outcome=\"locked\"}"),
            1.0
        );
        // Another person at the same address still signs in.
        sign_in(&browser, &site, "user2", &password_of("user2")).await;
        assert!(browser
            .text()
            .await
            .contains("This account belongs to User2 Family2"));
        browser.close().await;
    });
}

#[test]
fn behind_a_proxy_only_the_proxys_header_names_anyone() {
    let mut site =
        Site::start("  trusted_header:\n    name: X-Remote-User\n    proxies: [\"192.0.2.10\"]\n");
    // From an address that is not the proxy: refused, header or not.
    for headers in [vec![("X-Remote-User", "user2")], vec![]] {
        let response = request(&site.address, "GET", "/", &headers, "");
        assert_eq!(response.status, 403, "{}", response.body);
        assert!(response.body.contains("only through its sign-in proxy"));
    }
    in_browser(async {
        let browser = Browser::start().await;
        browser.client.goto(&site.url("/")).await.unwrap();
        let text = browser.text().await;
        assert!(text.contains("This site accepts requests only through its sign-in proxy."));
        browser.screenshot("untrusted-sender").await;
        browser.close().await;
    });

    // With loopback as the proxy, its header names the person; nothing else does.
    let config = site.config().join("registrar.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("192.0.2.10", "127.0.0.1")).unwrap();
    site.serve(&[]);
    let page = request(&site.address, "GET", "/", &[("X-Remote-User", "user2")], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page
        .body
        .contains("This account belongs to <strong>User2 Family2</strong>"));
    assert!(!page.body.contains("Sign out"));
    for headers in [
        vec![],
        vec![("X-Remote-User", "nobody-here")],
        vec![("X-Remote-User", "*")],
    ] {
        let response = request(&site.address, "GET", "/", &headers, "");
        assert_eq!(response.status, 401, "{headers:?}: {}", response.body);
    }
    // The header twice (a proxy that adds its own beside the client's): nobody.
    let twice = request(
        &site.address,
        "GET",
        "/",
        &[("X-Remote-User", "user1"), ("X-Remote-User", "user2")],
        "",
    );
    assert_eq!(twice.status, 401, "{}", twice.body);
    let form = request(
        &site.address,
        "POST",
        "/sign-in",
        &[],
        "login=user1&password=x",
    );
    assert_eq!(form.status, 404);
}

#[test]
fn the_lookup_api_answers_who_holds_a_name_for_listed_tokens() {
    let site = Site::start("");
    let bearer = format!("Bearer {API_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];

    // The protocol's rule normalises the name: `USER2` finds `user2`.
    let found = request(
        &site.address,
        "GET",
        "/api/v1/registrations/XMPP/USER2",
        &auth,
        "",
    );
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.header("content-type"), Some("application/json"));
    let holder: serde_json::Value = serde_json::from_str(&found.body).unwrap();
    assert_eq!(
        holder,
        serde_json::json!({
            "protocol": "xmpp", "im_name": "user2", "account_dn": dn_of("user2"),
            "display_name": "User2 Family2", "source": "ldap", "owner": "xmpp-from-mail",
            "status": "active"
        })
    );
    // Its fields are the OpenAPI document's, each required one there.
    let openapi: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/lookup-api.openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let schema = &openapi["components"]["schemas"]["Registration"];
    let mut documented: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut answered: Vec<&str> = holder
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort();
    answered.sort();
    assert_eq!(documented, answered);

    let missing = request(
        &site.address,
        "GET",
        "/api/v1/registrations/xmpp/nobody",
        &auth,
        "",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, r#"{"error":"nobody holds that name"}"#);
    for header in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", API_TOKEN)],
    ] {
        let refused = request(
            &site.address,
            "GET",
            "/api/v1/registrations/xmpp/user2",
            &header,
            "",
        );
        assert_eq!(refused.status, 401, "{header:?}");
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Bearer realm=\"registrar\"")
        );
        assert!(!refused.body.contains("uid="));
    }
    let post = request(
        &site.address,
        "POST",
        "/api/v1/registrations/xmpp/user2",
        &auth,
        "",
    );
    assert_eq!(post.status, 405);

    // Every response carries the guarding headers; the sign-in cookie is HttpOnly and
    // SameSite=Strict (not Secure: this listener is plain HTTP).
    for path in [
        "/sign-in",
        "/api/v1/registrations/xmpp/user2",
        "/nope",
        "/style.css",
    ] {
        let response = request(&site.address, "GET", path, &auth, "");
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{path}: {csp}"
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            response.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    }
    let sign_in = request(&site.address, "GET", "/sign-in", &[], "");
    let cookie = sign_in.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");

    assert_eq!(request(&site.address, "GET", "/livez", &[], "").status, 200);
    assert_eq!(
        request(&site.address, "GET", "/healthz", &[], "").body,
        "ok\n"
    );
    assert_eq!(
        metric(&site, "registrar_serve_lookups_total{answer=\"found\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &site,
            "registrar_serve_lookups_total{answer=\"unauthorized\"}"
        ),
        3.0
    );
}

#[test]
fn under_tls_cookies_are_secure_and_hsts_is_sent() {
    let mut site = Site::start("");
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (
        site.dir.path().join("cert.pem"),
        site.dir.path().join("key.pem"),
    );
    std::fs::write(&cert_path, certificate.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    site.serve(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    assert!(site.log().contains("listening on https://"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = std::net::TcpStream::connect(&site.address).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    use std::io::{Read, Write};
    write!(
        tls,
        "GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let response = site::parse_response(&raw);
    assert_eq!(response.status, 200);
    let cookie = response.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert!(response.header("strict-transport-security").is_some());
    assert_eq!(site.stop(), Some(0));
}

#[test]
fn serve_refuses_what_it_cannot_serve_with_one_clear_line() {
    let mut site = Site::start("");
    site.stop();
    let config = site.config().join("registrar.yaml");
    let text = std::fs::read_to_string(&config).unwrap();

    // A tokens file line that is not a digest: named by line, its text not echoed.
    let tokens = site.dir.path().join("api-tokens");
    std::fs::write(&tokens, "# gateway\nhunter2-not-a-digest\n").unwrap();
    let output = site.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_one_line_error(
        &output,
        &[&format!("{}:2: not a token's SHA-256", tokens.display())],
    );
    assert!(!stderr(&output).contains("hunter2"));

    // TLS files that are not PEM.
    std::fs::write(&tokens, "").unwrap();
    let output = site.run(&[
        "serve",
        "--listen",
        "0",
        "--tls-cert",
        "/dev/null",
        "--tls-key",
        "/dev/null",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("api_tokens_file") || stderr(&output).contains("--tls-cert"));
    let output = site.run(&["serve", "--listen", "0", "--tls-cert", "cert.pem"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));

    // No self_service section; one naming an LDIF source.
    let cut = text.find("self_service:").unwrap();
    std::fs::write(&config, &text[..cut]).unwrap();
    let output = site.run(&["serve", "--listen", "0"]);
    assert_one_line_error(&output, &["registrar serve needs a self_service section"]);
    std::fs::write(
        site.config().join("people.ldif"),
        "dn: uid=x,dc=example,dc=com\nuid: x\n\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "{}  - name: files\n    ldif:\n      path: people.ldif\n{}",
            &text[..text.find("accounts:").unwrap()],
            &text[text.find("accounts:").unwrap()..].replace("source: people", "source: files")
        ),
    )
    .unwrap();
    let output = site.run(&["validate"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("registrar.yaml:")
            && stderr(&output).contains("self_service.source files is an LDIF source"),
        "{}",
        stderr(&output)
    );
}

/// Signs in through the form with a plain HTTP client: the sign-in page's nonce cookie
/// and token, then the post (`token` replaces the form's token when given).
fn sign_in_by_http(
    site: &Site,
    login: &str,
    password: &str,
    token: Option<&str>,
) -> site::Response {
    let form = request(&site.address, "GET", "/sign-in", &[], "");
    let nonce = form
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let at = form.body.find("name=\"token\" value=\"").unwrap() + "name=\"token\" value=\"".len();
    let form_token = &form.body[at..at + form.body[at..].find('"').unwrap()];
    let body = format!(
        "token={}&login={}&password={}",
        token.unwrap_or(form_token),
        login.replace('*', "%2A"),
        password
    );
    request(
        &site.address,
        "POST",
        "/sign-in",
        &[
            ("Cookie", &nonce),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
}

#[test]
fn sign_in_proves_exactly_one_person_or_nobody() {
    let site = Site::start("");
    // The right password: a session cookie, HttpOnly and SameSite=Strict.
    let ok = sign_in_by_http(&site, "user1", &password_of("user1"), None);
    assert_eq!(
        (ok.status, ok.header("location")),
        (303, Some("/")),
        "{}",
        ok.body
    );
    let session = ok.header("set-cookie").unwrap();
    assert!(
        session.starts_with("registrar_session=") && session.contains("HttpOnly; SameSite=Strict")
    );
    // A login that is a filter proves nobody: unescaped, `user1*` would match user1 alone
    // and sign in with user1's password.
    let wildcard = sign_in_by_http(&site, "user1*", &password_of("user1"), None);
    assert_eq!(wildcard.status, 401);
    assert!(wildcard.body.contains("Wrong login or password."));
    // Another site's form (no matching token) signs nobody in, even with the password.
    let forged = sign_in_by_http(&site, "user1", &password_of("user1"), Some("forged"));
    assert_eq!(forged.status, 403);
    assert!(forged
        .header("set-cookie")
        .is_none_or(|c| !c.starts_with("registrar_session=")));
    // A session cookie with a bad signature is no session.
    let page = request(
        &site.address,
        "GET",
        "/",
        &[("Cookie", "registrar_session=AAAA.BBBB")],
        "",
    );
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/sign-in"))
    );

    // The directory down: one clear page, and a log line without the password.
    site.slapd.stop();
    let down = sign_in_by_http(&site, "user2", &password_of("user2"), None);
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down
        .body
        .contains("The directory cannot be reached right now"));
    let log = site.log();
    assert!(
        log.contains("registrar serve: finding login \"user2\": cannot connect to"),
        "{log}"
    );
    assert!(!log.contains(&password_of("user2")) && !log.contains(&password_of("user1")));
}

#[test]
fn sign_ins_sent_at_once_are_counted_before_the_directory_answers() {
    let site = Site::start("");
    let refusals: Vec<u16> = std::thread::scope(|scope| {
        let attempts: Vec<_> = (0..12)
            .map(|_| scope.spawn(|| sign_in_by_http(&site, "user2", "guess", None).status))
            .collect();
        attempts.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let wrong = refusals.iter().filter(|&&status| status == 401).count();
    let locked = refusals.iter().filter(|&&status| status == 429).count();
    assert_eq!((wrong, locked), (5, 7), "{refusals:?}");
    // The right password now meets the lock too.
    let late = sign_in_by_http(&site, "user2", &password_of("user2"), None);
    assert_eq!(late.status, 429);
    assert!(late.body.contains("Sign-in locked"));
}
