//! Connecting to a real PostgreSQL (the throwaway cluster on loopback): trust login, the
//! password from PGPASSWORD or a password file (a SCRAM role), the one-line errors (wrong
//! password, server down, no such database) that never show a password, and TLS for
//! `verify-full`, `verify-ca`, `require` and `prefer` with a CA made here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use registrar::postgres::{PasswordSources, PostgresConnectError, PostgresUrl, PostgresWarning};
use throwaway_postgres::{shared, Cluster, PASSWORD, PASSWORD_ROLE};

fn url(text: &str) -> PostgresUrl {
    PostgresUrl::parse(text).unwrap()
}

/// Connects without the process's HOME (no default root certificate file).
fn connect(
    url: &PostgresUrl,
    sources: &PasswordSources,
) -> (
    Result<postgres::Client, PostgresConnectError>,
    Vec<PostgresWarning>,
) {
    let mut warnings = Vec::new();
    let result = url.connect_with_home(sources, None, &mut warnings);
    (result, warnings)
}

fn no_password() -> PasswordSources {
    PasswordSources::default()
}

fn current_user_and_ssl(client: &mut postgres::Client) -> (String, bool) {
    let row = client
        .query_one(
            "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn assert_one_line_without(error: &str, secrets: &[&str]) {
    assert!(!error.contains('\n'), "not one line: {error}");
    for secret in secrets {
        assert!(!error.contains(secret), "shows {secret:?}: {error}");
    }
}

#[test]
fn the_trusted_superuser_logs_in() {
    let database = shared().database();
    let (client, warnings) = connect(&url(&database.url()), &no_password());
    let mut client = client.unwrap();
    let (user, ssl) = current_user_and_ssl(&mut client);
    assert_eq!(user, "registrar_test");
    assert!(
        !ssl,
        "the shared cluster has no TLS: prefer falls back to plain"
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let application_name = |client: &mut postgres::Client| -> String {
        client
            .query_one("SELECT current_setting('application_name')", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(application_name(&mut client), "registrar");
    let named = url(&format!(
        "{}?application_name=registrar%20run",
        database.url()
    ));
    let mut client = connect(&named, &no_password()).0.unwrap();
    assert_eq!(application_name(&mut client), "registrar run");
}

fn password_role_url(database: &str, params: &str) -> PostgresUrl {
    url(&format!(
        "postgres://{PASSWORD_ROLE}@127.0.0.1:{}/{database}{params}",
        shared().port()
    ))
}

#[test]
fn the_password_comes_from_pgpassword() {
    let database = shared().database();
    let sources = PasswordSources {
        pgpassword: Some(PASSWORD.to_string()),
        passfile: None,
    };
    let (client, warnings) = connect(&password_role_url(database.name(), ""), &sources);
    assert_eq!(current_user_and_ssl(&mut client.unwrap()).0, PASSWORD_ROLE);
    assert!(warnings.is_empty(), "{warnings:?}");
}

fn write_passfile(dir: &Path, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("pgpass");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn the_password_comes_from_a_passfile() {
    let database = shared().database();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "# registrar's store\nelsewhere:*:*:*:not-this-one\n127.0.0.1:{}:*:{PASSWORD_ROLE}:{PASSWORD}\n",
        shared().port()
    );
    let sources = PasswordSources {
        pgpassword: None,
        passfile: Some(write_passfile(dir.path(), &text, 0o600)),
    };
    let (client, warnings) = connect(&password_role_url(database.name(), ""), &sources);
    assert_eq!(current_user_and_ssl(&mut client.unwrap()).0, PASSWORD_ROLE);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_passfile_others_can_read_is_ignored_and_no_password_is_said_so() {
    let database = shared().database();
    let dir = tempfile::tempdir().unwrap();
    let text = format!("*:*:*:*:{PASSWORD}\n");
    let path = write_passfile(dir.path(), &text, 0o644);
    let sources = PasswordSources {
        pgpassword: None,
        passfile: Some(path.clone()),
    };
    let (client, warnings) = connect(&password_role_url(database.name(), ""), &sources);
    assert_eq!(
        warnings,
        vec![PostgresWarning::PassfileAccess {
            path: path.clone(),
            mode: 0o644
        }]
    );
    let error = client.err().unwrap();
    assert!(
        matches!(error, PostgresConnectError::NoPassword { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains(PASSWORD_ROLE),
        "{message}"
    );
    assert_one_line_without(&message, &[PASSWORD]);
}

#[test]
fn a_wrong_password_fails_clearly_without_showing_it() {
    let database = shared().database();
    let sources = PasswordSources {
        pgpassword: Some("wrong-secret-4711".to_string()),
        passfile: None,
    };
    let (client, _) = connect(&password_role_url(database.name(), ""), &sources);
    let error = client.err().unwrap();
    assert!(
        matches!(error, PostgresConnectError::AuthenticationFailed { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("password authentication failed")
            && message.contains("password from PGPASSWORD")
            && message.contains(&format!("127.0.0.1:{}", shared().port())),
        "{message}"
    );
    assert_one_line_without(&message, &["wrong-secret-4711", PASSWORD]);
    assert_one_line_without(&format!("{error:?}"), &["wrong-secret-4711"]);

    // A password in the URL: used, warned about, and never shown.
    let in_url = url(&format!(
        "postgres://{PASSWORD_ROLE}:url-secret-0815@127.0.0.1:{}/{}",
        shared().port(),
        database.name()
    ));
    let (client, warnings) = connect(&in_url, &no_password());
    let message = client.err().unwrap().to_string();
    assert_one_line_without(&message, &["url-secret-0815"]);
    assert!(matches!(
        warnings.as_slice(),
        [PostgresWarning::PasswordInUrl { .. }]
    ));
    assert_one_line_without(&warnings[0].to_string(), &["url-secret-0815"]);
}

#[test]
fn a_server_that_is_down_is_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (client, _) = connect(
        &url(&format!("postgres://registrar_test@127.0.0.1:{port}/store")),
        &no_password(),
    );
    assert_eq!(
        client.err().unwrap().to_string(),
        format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused \
             (postgres://registrar_test@127.0.0.1:{port}/store)"
        )
    );
}

#[test]
fn a_server_that_does_not_answer_times_out() {
    // The kernel accepts the connection into the backlog; nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let (client, _) = connect(
        &url(&format!(
            "postgres://registrar_test@127.0.0.1:{port}/store?connect_timeout=1"
        )),
        &no_password(),
    );
    assert_eq!(
        client.err().unwrap().to_string(),
        format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}: no answer within 1 s \
             (postgres://registrar_test@127.0.0.1:{port}/store)"
        )
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_database_that_does_not_exist_is_named() {
    let (client, _) = connect(
        &url(&format!(
            "postgres://registrar_test@127.0.0.1:{}/no_such_store",
            shared().port()
        )),
        &no_password(),
    );
    let error = client.err().unwrap();
    assert!(
        matches!(error, PostgresConnectError::UnknownDatabase { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("has no database \"no_such_store\""),
        "{error}"
    );
}

#[test]
fn require_refuses_a_server_without_tls() {
    let database = shared().database();
    let (client, _) = connect(
        &url(&format!("{}?sslmode=require", database.url())),
        &no_password(),
    );
    let error = client.err().unwrap();
    assert!(
        matches!(error, PostgresConnectError::Tls { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("server does not support TLS"),
        "{error}"
    );
}

/// A cluster with TLS, its certificate (for 127.0.0.1 only) signed by a CA of its own.
struct TlsCluster {
    cluster: Cluster,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn tls_cluster() -> &'static TlsCluster {
    static CLUSTER: OnceLock<TlsCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = certificate_authority("registrar test CA");
        let (other_ca_pem, _) = certificate_authority("someone else's CA");
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.use_authority_key_identifier_extension = true;
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let ca_file = dir.path().join("ca.pem");
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(&other_ca_file, other_ca_pem).unwrap();
        let cluster =
            Cluster::start_with_tls(&server_cert.pem(), &server_key.serialize_pem()).unwrap();
        TlsCluster {
            cluster,
            ca_file,
            other_ca_file,
            _dir: dir,
        }
    })
}

fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = ca.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(ca, key))
}

fn tls_url(host: &str, params: &str) -> PostgresUrl {
    url(&format!(
        "postgres://registrar_test@{host}:{}/postgres?{params}",
        tls_cluster().cluster.port()
    ))
}

#[test]
fn verify_full_connects_with_the_right_ca_and_name() {
    let ca = tls_cluster().ca_file.display().to_string();
    let (client, _) = connect(
        &tls_url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &no_password(),
    );
    let (user, ssl) = current_user_and_ssl(&mut client.unwrap());
    assert_eq!((user.as_str(), ssl), ("registrar_test", true));
}

#[test]
fn verify_full_refuses_a_wrong_host_name_and_verify_ca_does_not_check_it() {
    let ca = tls_cluster().ca_file.display().to_string();
    // The certificate names 127.0.0.1, not localhost.
    let (client, _) = connect(
        &tls_url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &no_password(),
    );
    let error = client.err().unwrap();
    assert!(
        matches!(error, PostgresConnectError::Tls { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "TLS with PostgreSQL at localhost:{} failed:",
            tls_cluster().cluster.port()
        )) && message.contains("certificate not valid for name \"localhost\""),
        "{message}"
    );
    assert_one_line_without(&message, &[]);

    let (client, _) = connect(
        &tls_url("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        &no_password(),
    );
    assert!(current_user_and_ssl(&mut client.unwrap()).1);
}

#[test]
fn verify_full_refuses_a_server_from_another_ca() {
    let other = tls_cluster().other_ca_file.display().to_string();
    for mode in ["verify-full", "verify-ca", "require"] {
        let (client, _) = connect(
            &tls_url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={other}")),
            &no_password(),
        );
        let error = client.err().unwrap();
        assert!(
            matches!(error, PostgresConnectError::Tls { .. }),
            "{mode}: {error:?}"
        );
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "{mode}: {error}"
        );
    }
}

#[test]
fn require_and_prefer_encrypt_without_a_root_file() {
    for mode in ["require", "prefer"] {
        let (client, _) = connect(
            &tls_url("localhost", &format!("sslmode={mode}")),
            &no_password(),
        );
        assert!(
            current_user_and_ssl(&mut client.unwrap()).1,
            "{mode}: not encrypted"
        );
    }
    let (client, _) = connect(&tls_url("127.0.0.1", "sslmode=disable"), &no_password());
    assert!(!current_user_and_ssl(&mut client.unwrap()).1);
}
