//! Untrusted config (DESIGN.md, "Trust"): a pull request's YAML and LDIF run beside the
//! directory's secrets, and nothing they say may carry a secret or a local file out.
//! Files stay inside the repository (working tree and `--rev` alike), the head's LDAP
//! sources connect with the trusted revision's settings (a loopback listener records
//! that no head-chosen server is ever contacted), the config may not read secret
//! attributes, and no command prints the bind password in any form. The store is on the
//! backend of the run (`REGISTRAR_TEST_STORE`).

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use git2::Repository;

mod common;

use common::slapd::{users_ldif, Options, Slapd, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD};
use common::store::{self, TestStore};
use common::{assert_one_line_error, json, registrar, stderr, stdout};

/// What the process environment holds in these tests, and must never be printed.
const CANARY: &str = "canary-7d3f0b2e-in-the-environment";
/// The environment variable the LDAP configs name in `password_env`.
const PASSWORD_ENV: &str = "REGISTRAR_TEST_LDAP_PASSWORD";

const MAPPING: &str = r#"mappings:
  - name: aol-from-description
    protocol: aol
    value: "{description|lower}"
"#;

/// A config directory outside git (its root is the directory itself), and a store.
struct Plain {
    dir: tempfile::TempDir,
    store: TestStore,
}

impl Plain {
    fn new(sources_yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        let plain = Plain {
            dir,
            store: TestStore::fresh(),
        };
        plain.write("sources.yaml", sources_yaml);
        plain.write("mappings.yaml", MAPPING);
        plain
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.config().join(name), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        registrar(&self.config(), &self.store.argument())
            .args(args)
            .env("REGISTRAR_TEST_CANARY", CANARY)
            .output()
            .unwrap()
    }
}

fn ldif_source(path: &str) -> String {
    format!("sources:\n  - name: corp\n    ldif:\n      path: {path}\n")
}

/// One user whose `description` is the LDIF value line `description_line`.
fn user_ldif(description_line: &str) -> String {
    format!(
        "dn: cn=Ann,dc=example,dc=com\nobjectClass: person\ncn: Ann\nsn: A\n{description_line}\n"
    )
}

fn assert_no_canary(output: &Output) {
    for (what, text) in [("stdout", stdout(output)), ("stderr", stderr(output))] {
        assert!(
            !text.contains(CANARY),
            "{what} holds the environment: {text}"
        );
    }
}

#[test]
fn ldif_url_values_read_only_files_inside_the_config_root() {
    let plain = Plain::new(&ldif_source("people.ldif"));
    // A file inside the root is read (the control: the same test fails if nothing is).
    plain.write("note.txt", "InsideValue\n");
    plain.write("people.ldif", &user_ldif("description:< note.txt"));
    let plan = json(&plain.run(&["plan", "--format", "json"]));
    assert!(plan.to_string().contains("insidevalue\\n"), "{plan}");

    let outside = plain.dir.path().join("outside.txt");
    std::fs::write(&outside, CANARY).unwrap();
    std::os::unix::fs::symlink(&outside, plain.config().join("link.txt")).unwrap();
    for (url, needles) in [
        (
            "file:///proc/self/environ".to_string(),
            &["people.ldif:", "/proc/self/environ", "/proc or /sys"][..],
        ),
        (
            format!("file://{}", outside.display()),
            &["people.ldif:", "outside.txt", "outside"],
        ),
        ("../outside.txt".to_string(), &["people.ldif:", "outside"]),
        (
            "link.txt".to_string(),
            &["people.ldif:", "link.txt", "resolves to"],
        ),
        (
            "/dev/zero".to_string(),
            &["people.ldif:", "/dev/zero", "outside"],
        ),
    ] {
        plain.write("people.ldif", &user_ldif(&format!("description:< {url}")));
        for args in [
            &["plan"][..],
            &["plan", "--format", "json"],
            &["plan", "--format", "markdown"],
            &["export", "--source", "corp", "--format", "json"],
        ] {
            let output = plain.run(args);
            assert_one_line_error(&output, needles);
            assert_no_canary(&output);
        }
    }
}

#[test]
fn config_paths_outside_the_root_devices_and_fifos_are_refused_with_their_place() {
    let plain = Plain::new(&ldif_source("people.ldif"));
    plain.write("people.ldif", &user_ldif("description: fine"));
    let parent = plain.dir.path();
    std::fs::write(parent.join("outside.ldif"), user_ldif("description: x")).unwrap();
    std::os::unix::fs::symlink(
        parent.join("outside.ldif"),
        plain.config().join("link.ldif"),
    )
    .unwrap();
    let fifo = plain.config().join("pipe.ldif");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for (path, needle) in [
        ("../outside.ldif", "outside"),
        ("link.ldif", "resolves to"),
        ("/proc/self/environ", "/proc or /sys"),
        ("/dev/zero", "outside"),
        ("pipe.ldif", "a FIFO"),
        ("/etc/hostname", "outside"),
    ] {
        plain.write("sources.yaml", &ldif_source(path));
        // The FIFO is refused by its metadata: opening it would block.
        let output = plain.run(&["validate"]);
        assert_one_line_error(&output, &["sources.yaml:4:", path, needle]);
        let output = plain.run(&["plan"]);
        assert_one_line_error(&output, &[path, needle]);
    }
    // A change-file glob is confined too: its directory, then each file.
    plain.write(
        "sources.yaml",
        &format!("{}      changes: ../*.ldif\n", ldif_source("people.ldif")),
    );
    let output = plain.run(&["plan"]);
    assert_one_line_error(&output, &["outside"]);
}

/// A git repository in a temp dir: `registrar/` holds the config; and a store.
struct Repo {
    dir: tempfile::TempDir,
    repo: Repository,
    store: TestStore,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let repo = Repository::init(dir.path().join("work")).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Repo {
            dir,
            repo,
            store: TestStore::fresh(),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn config(&self) -> PathBuf {
        self.root().join("registrar")
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn commit(&self, message: &str) {
        common::commit_all(&self.repo, message);
    }

    fn run(&self, args: &[&str], password: &str) -> Output {
        registrar(&self.config(), &self.store.argument())
            .args(args)
            .env(PASSWORD_ENV, password)
            .env("REGISTRAR_TEST_CANARY", CANARY)
            .output()
            .unwrap()
    }
}

#[test]
fn in_git_the_root_is_the_repository_in_the_working_tree_as_at_a_revision() {
    let repo = Repo::new();
    // A data file beside the config directory, inside the repository: allowed.
    repo.write("snapshots/people.ldif", &user_ldif("description: Beside"));
    repo.write(
        "registrar/sources.yaml",
        &ldif_source("../snapshots/people.ldif"),
    );
    repo.write("registrar/mappings.yaml", MAPPING);
    repo.commit("config");
    for args in [
        &["plan", "--format", "json"][..],
        &["--rev", "main", "plan", "--format", "json"],
    ] {
        let plan = json(&repo.run(args, "unused"));
        assert!(plan.to_string().contains("\"beside\""), "{plan}");
    }
    // One level further up leaves the repository: refused in both.
    std::fs::write(
        repo.dir.path().join("outside.ldif"),
        user_ldif("description: x"),
    )
    .unwrap();
    repo.write("registrar/sources.yaml", &ldif_source("../../outside.ldif"));
    repo.commit("escape");
    let output = repo.run(&["validate"], "unused");
    assert_one_line_error(
        &output,
        &["sources.yaml:4:", "../../outside.ldif", "outside"],
    );
    let output = repo.run(&["--rev", "main", "validate"], "unused");
    assert_one_line_error(&output, &["sources.yaml:4:", "escapes the git repository"]);
    // A symlink committed inside the repository that points out of it: refused.
    std::os::unix::fs::symlink(
        repo.dir.path().join("outside.ldif"),
        repo.root().join("snapshots/link.ldif"),
    )
    .unwrap();
    repo.write(
        "registrar/sources.yaml",
        &ldif_source("../snapshots/link.ldif"),
    );
    let output = repo.run(&["plan"], "unused");
    assert_one_line_error(&output, &["snapshots/link.ldif", "resolves to", "outside"]);
}

#[test]
fn templates_filters_anchors_and_requested_attributes_may_not_read_secrets() {
    let plain = Plain::new(&ldif_source("people.ldif"));
    plain.write("people.ldif", &user_ldif("description: x"));
    let ldap = |extra: &str| {
        format!(
            "sources:\n  - name: dir\n    ldap:\n      url: ldap://127.0.0.1:9\n      \
             anonymous: true\n      base_dn: dc=example,dc=com\n{extra}"
        )
    };
    let mapping = |value: &str, when: &str| {
        format!("mappings:\n  - name: m\n    protocol: aol\n    value: \"{value}\"\n{when}")
    };
    let cases = [
        ("mappings.yaml", mapping("{userPassword}", ""), "mappings.yaml:4:", "userPassword"),
        (
            "mappings.yaml",
            mapping("{mail}", "    when: \"(msDS-ManagedPassword=*)\"\n"),
            "mappings.yaml:5:",
            "msDS-ManagedPassword",
        ),
        (
            "mappings.yaml",
            format!("{MAPPING}accounts:\n  profile:\n    title: \"{{userPassword;binary|lower}}\"\n"),
            "mappings.yaml:7:",
            "userPassword;binary",
        ),
        (
            "mappings.yaml",
            format!("{MAPPING}exclusions:\n  - name: x\n    filter: \"(unicodePwd=*)\"\n"),
            "mappings.yaml:7:",
            "unicodePwd",
        ),
        (
            "sources.yaml",
            "sources:\n  - name: corp\n    anchor: unicodePwd\n    ldif:\n      path: people.ldif\n"
                .to_string(),
            "sources.yaml:3:",
            "unicodePwd",
        ),
        (
            "sources.yaml",
            ldap("      filter: (sambaNTPassword=a*)\n"),
            "sources.yaml:",
            "sambaNTPassword",
        ),
        (
            "sources.yaml",
            ldap("      attributes: [mail, krbPrincipalKey]\n"),
            "sources.yaml:",
            "krbPrincipalKey",
        ),
    ];
    for (file, text, place, secret) in cases {
        plain.write("sources.yaml", &ldif_source("people.ldif"));
        plain.write("mappings.yaml", MAPPING);
        plain.write(file, &text);
        let output = plain.run(&["validate"]);
        assert_one_line_error(
            &output,
            &[place, &format!("reads {secret}, a secret attribute")],
        );
    }
    // An attribute that only looks alike is fine.
    plain.write("sources.yaml", &ldif_source("people.ldif"));
    plain.write(
        "mappings.yaml",
        "mappings:\n  - name: ok\n    protocol: aol\n    value: \"{description}\"\n    when: \"(!(pwdLastSet=0))\"\n",
    );
    let output = plain.run(&["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// A loopback listener that records every connection and the bytes it receives.
struct Recorder {
    port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut bytes = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buffer[..n]);
                }
                sink.lock().unwrap().push(bytes);
            }
        });
        Recorder { port, received }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }
}

fn ldap_source(name: &str, url: &str, bind_dn: &str) -> String {
    format!(
        "  - name: {name}\n    ldap:\n      url: {url}\n      bind_dn: {bind_dn}\n      \
         password_env: {PASSWORD_ENV}\n      base_dn: {PEOPLE_DN}\n"
    )
}

#[test]
fn a_review_reads_the_heads_ldap_sources_with_the_bases_connection_settings() {
    let slapd = Slapd::start(Options::default());
    slapd.load_ldif(&users_ldif(3));
    let recorder = Recorder::start();
    let repo = Repo::new();
    repo.write(
        "registrar/sources.yaml",
        &format!(
            "sources:\n{}",
            ldap_source("people", &slapd.url(), SERVICE_DN)
        ),
    );
    repo.write(
        "registrar/mappings.yaml",
        "mappings:\n  - name: aol-from-uid\n    protocol: aol\n    value: \"{uid}\"\n",
    );
    repo.commit("base");

    // The head points the source at another server and another bind DN.
    repo.write(
        "registrar/sources.yaml",
        &format!(
            "sources:\n{}",
            ldap_source("people", &recorder.url(), "cn=admin,dc=example,dc=com")
        ),
    );
    let output = repo.run(&["plan", "--base", "main"], SERVICE_PASSWORD);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("source people: connection settings changed in this revision"),
        "{text}"
    );
    assert!(text.contains("+ account uid=user1,"), "{text}");
    let plan = json(&repo.run(
        &["plan", "--base", "main", "--format", "json"],
        SERVICE_PASSWORD,
    ));
    assert_eq!(
        plan["connection_trust"],
        serde_json::json!([{"source": "people", "reading": "trusted_settings"}])
    );
    assert!(plan["summary"]["add"].as_u64().unwrap() > 0, "{plan}");
    let markdown = stdout(&repo.run(
        &["plan", "--base", "main", "--format", "markdown"],
        SERVICE_PASSWORD,
    ));
    assert!(
        markdown.contains("> Note: source people: connection settings changed"),
        "{markdown}"
    );
    // --trusted-rev gives the same protection without the effect.
    let output = repo.run(&["plan", "--trusted-rev", "main"], SERVICE_PASSWORD);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        recorder.connections().is_empty(),
        "the head's server was contacted"
    );

    // A new LDAP source of the head's is not read at all; a saved plan of it cannot be
    // applied.
    repo.write(
        "registrar/sources.yaml",
        &format!(
            "sources:\n{}{}",
            ldap_source("people", &slapd.url(), SERVICE_DN),
            ldap_source("evil", &recorder.url(), SERVICE_DN)
        ),
    );
    let saved = repo.dir.path().join("review.json");
    let output = repo.run(
        &["plan", "--base", "main", "--out", saved.to_str().unwrap()],
        SERVICE_PASSWORD,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .contains("source evil: new LDAP source in this revision: not read until merged"),
        "{}",
        stdout(&output)
    );
    assert!(
        recorder.connections().is_empty(),
        "the head's new server was contacted"
    );
    let output = repo.run(
        &["apply", "--plan", saved.to_str().unwrap()],
        SERVICE_PASSWORD,
    );
    assert_one_line_error(&output, &["made for review", "did not read source evil"]);
    let state = json(&repo.run(&["state", "show", "--format", "json"], SERVICE_PASSWORD));
    assert_eq!(
        state["accounts"],
        serde_json::json!([]),
        "a refused apply wrote"
    );

    // The opt-out does contact the head's server: the recorder sees the bind, so the
    // checks above would catch a review that did.
    let output = repo.run(
        &["plan", "--base", "main", "--trust-head"],
        SERVICE_PASSWORD,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    std::thread::sleep(Duration::from_millis(600));
    let connections = recorder.connections();
    assert_eq!(
        connections.len(),
        1,
        "--trust-head reads the head as configured"
    );
    let bind = &connections[0];
    assert!(
        bind.windows(SERVICE_DN.len())
            .any(|w| w == SERVICE_DN.as_bytes()),
        "the recorder saw no bind request"
    );
    assert_no_canary(&output);
}

/// Every form a password could take in output: as is, base64 and hex.
fn forms_of(secret: &str) -> Vec<String> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
        hex.clone(),
        hex.to_uppercase(),
    ]
}

fn assert_free_of(secret: &str, what: &str, bytes: &[u8]) {
    for form in forms_of(secret) {
        assert!(
            !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
            "{what} holds the password (as {form:?})"
        );
    }
}

#[test]
fn no_command_prints_or_stores_the_bind_password_in_any_form() {
    const PASSWORD: &str = "Pw-0e9c4b1a-registrar-distinct";
    const WRONG: &str = "Wrong-5a1d93c7-registrar-distinct";
    let slapd = Slapd::start(Options::default());
    let mut ldif = users_ldif(4);
    ldif.push_str(&format!(
        "\ndn: cn=svc-canary,ou=service,dc=example,dc=com\nobjectClass: person\n\
         cn: svc-canary\nsn: canary\nuserPassword: {PASSWORD}\n"
    ));
    slapd.load_ldif(&ldif);
    let bind_dn = "cn=svc-canary,ou=service,dc=example,dc=com";
    let repo = Repo::new();
    repo.write(
        "registrar/sources.yaml",
        &format!("sources:\n{}", ldap_source("people", &slapd.url(), bind_dn)),
    );
    repo.write(
        "registrar/mappings.yaml",
        "mappings:\n  - name: aol-from-uid\n    protocol: aol\n    value: \"{uid}\"\n\
         schedules:\n  - name: nightly\n    cron: \"0 3 * * *\"\n    action: apply\n",
    );
    repo.commit("config");
    let dir = repo.dir.path();
    let out = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let commands: Vec<Vec<String>> = [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec!["plan", "--format", "markdown"],
        vec!["plan", "--format", "ldif"],
        vec!["plan", "--base", "main", "--format", "json"],
        vec!["plan", "--out", &out("plan.json")],
        vec!["apply", "--plan", &out("plan.json")],
        vec!["apply", "--auto-approve"],
        vec!["state", "show"],
        vec!["state", "show", "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
        vec!["drift"],
        vec!["drift", "--format", "json"],
        vec!["drift", "--format", "markdown"],
        vec!["drift", "--format", "html", "--out", &out("drift.html")],
        vec!["export", "--source", "people"],
        vec!["export", "--source", "people", "--format", "json"],
        vec!["discover", "--source", "people"],
        vec!["discover", "--source", "people", "--format", "json"],
        vec!["run", "--once"],
    ]
    .into_iter()
    .map(|args| args.into_iter().map(str::to_string).collect())
    .collect();
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = repo.run(&args, PASSWORD);
        assert_free_of(PASSWORD, &format!("stdout of {args:?}"), &output.stdout);
        assert_free_of(PASSWORD, &format!("stderr of {args:?}"), &output.stderr);
        // Each really ran (drift exits 2 when the store departs from the config).
        assert!(
            matches!(output.status.code(), Some(0 | 2)),
            "{args:?} failed: {}",
            stderr(&output)
        );
    }
    // A wrong password fails, and is not printed either.
    for args in [
        &["plan"][..],
        &["export", "--source", "people"],
        &["apply", "--auto-approve"],
    ] {
        let output = repo.run(args, WRONG);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_free_of(
            WRONG,
            "a failed bind's output",
            &[output.stdout, output.stderr].concat(),
        );
    }
    // Nor does it land in the store, or in any file the commands wrote.
    let kept = store::fingerprint(&repo.store).expect("the commands applied");
    assert_free_of(PASSWORD, &store::named(&repo.store), &kept);
    for file in [dir.join("plan.json"), dir.join("drift.html")] {
        let bytes = std::fs::read(&file).unwrap();
        assert_free_of(PASSWORD, &file.display().to_string(), &bytes);
    }
    // The SQLite file's sidecars (journal, WAL) too, in the store's own dir.
    let sidecars: Vec<PathBuf> = [dir, repo.store.dir()]
        .into_iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    for file in sidecars {
        assert_free_of(
            PASSWORD,
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
        );
    }
}
