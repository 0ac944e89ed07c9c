//! A real OpenLDAP `slapd` on loopback for one test: its own temp dir, config, `mdb`
//! database and free port, optionally TLS (StartTLS and `ldaps://`) with a test CA, and
//! optionally a size limit that only non-paged searches hit.
//!
//! `Slapd::start` panics (with slapd's log) when the server does not come up, and with
//! install guidance when slapd is missing: these tests are never skipped. Dropping the
//! value kills the server and removes its directory. It only ever listens on 127.0.0.1.
//!
//! The rootdn ([`ROOT_DN`]) bypasses every limit and access rule, as in any slapd: bind as
//! the service account ([`SERVICE_DN`]) or anonymously to see the size limit and the ACLs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[allow(unused_imports)] // the fixture, here too so a test needs one import; each takes a part
pub use super::ldap_fixture::{
    base_ldif, people_ldif, users_ldif, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD, SUFFIX,
};

/// The database's rootdn: bypasses ACLs and limits.
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
/// The rootdn's password.
pub const ROOT_PASSWORD: &str = "secret";

/// What `Slapd::start` prints when OpenLDAP is not installed.
pub const NOT_INSTALLED: &str =
    "slapd not found: install OpenLDAP with apt-get install -y slapd ldap-utils (ci/test does this)";

/// How long `Slapd::start` waits for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server is set up. `Options::default()` is plain LDAP with no size limit.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The server's size limit for everyone but the rootdn: a search without the Simple
    /// Paged Results control gets this many entries, then `sizeLimitExceeded` (4); a paged
    /// search, whatever its page size, still gets every entry.
    pub size_limit: Option<u32>,
    /// Also listen on `ldaps://`, and offer StartTLS on `ldap://`, with a server
    /// certificate for `127.0.0.1` and `localhost` signed by a fresh test CA
    /// ([`Slapd::ca_file`]).
    pub tls: bool,
    /// With `size_limit`: let it cap paged searches too (slapd's default, where
    /// `size.prtotal` is the hard limit), so a paged search is cut short with
    /// `sizeLimitExceeded` after that many entries.
    pub size_limit_caps_paging: bool,
    /// Schema files (slapd.conf syntax) to include after OpenLDAP's core, cosine,
    /// inetorgperson and nis.
    pub schemas: Vec<PathBuf>,
    /// Serve RFC 4533 content synchronization (the syncprov overlay).
    pub sync_provider: Option<SyncProvider>,
    /// Attributes the service account may not read (an `access` rule before the others).
    pub hidden_from_service: Vec<&'static str>,
}

/// How the syncprov overlay remembers deletions.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncProvider {
    /// `syncprov-sessionlog`: the last this many deletions are sent as such to a
    /// consumer whose cookie they follow. `None`, or a cookie older than the log: the
    /// consumer learns of deletions from the entries still present (the present phase).
    pub session_log: Option<u32>,
}

impl Options {
    /// Sets [`Options::size_limit`].
    pub fn size_limit(mut self, limit: u32) -> Self {
        self.size_limit = Some(limit);
        self
    }

    /// Sets [`Options::size_limit`] and [`Options::size_limit_caps_paging`].
    pub fn size_limit_capping_paging(mut self, limit: u32) -> Self {
        self.size_limit = Some(limit);
        self.size_limit_caps_paging = true;
        self
    }

    /// Sets [`Options::tls`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Sets [`Options::sync_provider`].
    pub fn sync_provider(mut self, provider: SyncProvider) -> Self {
        self.sync_provider = Some(provider);
        self
    }

    /// Adds `attribute` to [`Options::hidden_from_service`].
    pub fn hide_from_service(mut self, attribute: &'static str) -> Self {
        self.hidden_from_service.push(attribute);
        self
    }

    /// Adds a schema file to [`Options::schemas`].
    pub fn schema(mut self, path: impl Into<PathBuf>) -> Self {
        self.schemas.push(path.into());
        self
    }
}

/// A running slapd. Kill or stop it from any thread (`&self`); drop kills it.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    pid: u32,
    port: u16,
    ldaps_port: Option<u16>,
}

impl Slapd {
    /// Starts a server with an empty database (load entries with [`Slapd::load_ldif`]),
    /// and returns once it answers a search of the root DSE.
    pub fn start(options: Options) -> Slapd {
        let slapd = find_program("slapd", &["/usr/sbin/slapd", "/usr/local/libexec/slapd"])
            .unwrap_or_else(|| panic!("{NOT_INSTALLED}"));
        for tool in ["ldapsearch", "ldapadd"] {
            find_program(tool, &[]).unwrap_or_else(|| panic!("{NOT_INSTALLED}"));
        }
        let dir = tempfile::Builder::new()
            .prefix("slapd-")
            .tempdir()
            .expect("creating slapd's temp dir");
        std::fs::create_dir(dir.path().join("db")).expect("creating the database dir");
        if options.tls {
            write_certificates(dir.path());
        }

        // The free port may be taken by someone else between our probe and slapd's bind:
        // then slapd exits at once, and we try again with other ports.
        for _attempt in 0..5 {
            let (port, ldaps_port) = if options.tls {
                let [a, b] = free_ports::<2>();
                (a, Some(b))
            } else {
                (free_ports::<1>()[0], None)
            };
            let conf = dir.path().join("slapd.conf");
            std::fs::write(&conf, config(dir.path(), &options)).expect("writing slapd.conf");
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(ldaps) = ldaps_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{ldaps}/"));
            }
            let log_path = dir.path().join("slapd.log");
            let log = std::fs::File::create(&log_path).expect("creating slapd.log");
            let mut child = Command::new(&slapd)
                .arg("-f")
                .arg(&conf)
                .args(["-h", &urls, "-d", "0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("duplicating the log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("running {}: {e}", slapd.display()));
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    return Slapd {
                        pid: child.id(),
                        child: Mutex::new(Some(child)),
                        dir,
                        port,
                        ldaps_port,
                    }
                }
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("slapd did not start; its log:\n{log}"),
            }
        }
        panic!("slapd did not start: its ports were taken five times over")
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS there when TLS is on).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`. Panics unless started with TLS.
    pub fn ldaps_url(&self) -> String {
        let port = self.ldaps_port.expect("ldaps_url needs Options::tls");
        format!("ldaps://127.0.0.1:{port}")
    }

    /// The test CA's certificate (PEM) that signed the server's. Panics unless started
    /// with TLS.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.ldaps_port.is_some(), "ca_file needs Options::tls");
        self.dir.path().join("ca.pem")
    }

    /// The plain LDAP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir holding the config, database, certificates and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What slapd has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Adds the entries of `ldif` as the rootdn (`ldapadd`); panics with ldapadd's
    /// output when any fails.
    pub fn load_ldif(&self, ldif: &str) {
        self.as_root("ldapadd", ldif);
    }

    /// Applies the change records of `ldif` (modify, modrdn, delete, add) as the rootdn
    /// (`ldapmodify`); panics with its output when any fails.
    pub fn modify(&self, ldif: &str) {
        self.as_root("ldapmodify", ldif);
    }

    fn as_root(&self, tool: &str, ldif: &str) {
        let mut command = Command::new(tool);
        command.args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PASSWORD]);
        let output = super::output_with_input(command, ldif);
        assert!(
            output.status.success(),
            "{tool} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }

    /// Runs `ldapsearch -x -LLL -o ldif-wrap=no -o nettimeout=5 -H URL ARGS…` against
    /// this server (add `-D`/`-w` to bind, `-E pr=N/noprompt` to page).
    pub fn ldapsearch(&self, args: &[&str]) -> Output {
        Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5"])
            .args(["-H", &self.url()])
            .args(args)
            .output()
            .expect("running ldapsearch")
    }

    /// Kills the server with SIGKILL (a server dying mid-search) and reaps it; from then
    /// on its ports refuse connections. Does nothing if it is already gone.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM), falling back to SIGKILL after 10 s.
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the root DSE on `port` answers; `Err(log)` when slapd exits or time runs
/// out (then it is killed).
fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(log_path).unwrap_or_default();
    let url = format!("ldap://127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("(slapd exited: {status})\n{}", log()));
        }
        let answered = Command::new("ldapsearch")
            .args([
                "-x",
                "-o",
                "nettimeout=1",
                "-H",
                &url,
                "-b",
                "",
                "-s",
                "base",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if answered {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("(no answer after {START_TIMEOUT:?})\n{}", log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// slapd.conf for a server living in `dir`.
fn config(dir: &Path, options: &Options) -> String {
    let dir = dir.display();
    let schema = ["/etc/ldap/schema", "/etc/openldap/schema"]
        .into_iter()
        .find(|d| Path::new(d).join("core.schema").exists())
        .expect("OpenLDAP's schema dir (/etc/ldap/schema)");
    let mut conf = String::from("# Written by tests/common/slapd.rs for one test.\n");
    for name in ["core", "cosine", "inetorgperson", "nis"] {
        conf.push_str(&format!("include {schema}/{name}.schema\n"));
    }
    for extra in &options.schemas {
        conf.push_str(&format!("include {}\n", extra.display()));
    }
    conf.push_str(&format!(
        "pidfile {dir}/slapd.pid\nargsfile {dir}/slapd.args\n"
    ));
    // Debian builds the backends as modules; elsewhere mdb may be built in.
    if Path::new("/usr/lib/ldap/back_mdb.la").exists() {
        conf.push_str("modulepath /usr/lib/ldap\nmoduleload back_mdb\n");
        if options.sync_provider.is_some() {
            conf.push_str("moduleload syncprov\n");
        }
    }
    if options.tls {
        conf.push_str(&format!(
            "TLSCACertificateFile {dir}/ca.pem\nTLSCertificateFile {dir}/server.pem\n\
             TLSCertificateKeyFile {dir}/server.key\n"
        ));
    }
    for attribute in &options.hidden_from_service {
        conf.push_str(&format!(
            "access to attrs={attribute}\n  by dn.exact=\"{SERVICE_DN}\" none\n  by * read\n"
        ));
    }
    // Everyone may read everything, anonymous included, except passwords: those only
    // their owner reads, and anonymous may only bind with them.
    conf.push_str(
        "access to attrs=userPassword\n  by self read\n  by anonymous auth\n  by * none\n\
         access to *\n  by * read\n",
    );
    conf.push_str(&format!(
        "database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\n\
         rootpw {ROOT_PASSWORD}\ndirectory {dir}/db\nindex objectClass,uid eq\n"
    ));
    match options.size_limit {
        // size.soft/size.hard cap every search; size.prtotal=unlimited lifts the cap for
        // searches with the paged results control (its default is the hard limit).
        Some(limit) if options.size_limit_caps_paging => {
            conf.push_str(&format!("sizelimit size.soft={limit} size.hard={limit}\n"))
        }
        Some(limit) => conf.push_str(&format!(
            "sizelimit size.soft={limit} size.hard={limit} size.prtotal=unlimited\n"
        )),
        // slapd's own default is 500, paged or not.
        None => conf.push_str("sizelimit unlimited\n"),
    }
    if let Some(provider) = options.sync_provider {
        conf.push_str("index entryCSN,entryUUID eq\noverlay syncprov\n");
        if let Some(size) = provider.session_log {
            conf.push_str(&format!("syncprov-sessionlog {size}\n"));
        }
    }
    conf
}

/// Writes `ca.pem` (a fresh test CA), and `server.pem` with `server.key` (a certificate
/// for 127.0.0.1 and localhost signed by it; ECDSA P-256, PKCS#8 key) into `dir`. The
/// Samba harness serves the same kind of certificate.
pub fn write_certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.distinguished_name
        .push(DnType::CommonName, "registrar test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("writing ca.pem");
    std::fs::write(dir.join("server.pem"), server_cert.pem()).expect("writing server.pem");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("writing server.key");
}

/// `N` distinct free loopback ports: bound at once (so they differ), then released.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// `name` on `PATH`, or the first of `also` that exists (slapd lives in sbin).
pub fn find_program(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}
