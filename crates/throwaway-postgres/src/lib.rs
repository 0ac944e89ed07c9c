//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, a server on a free
//! loopback port, one fresh database per test.
//!
//! - [`Cluster::start`] (or [`Cluster::start_with_tls`]) runs the Debian server binaries
//!   (`/usr/lib/postgresql/<highest>/bin`, else `pg_config --bindir`); when the test runs
//!   as root they run as the unprivileged `postgres` user. The superuser role
//!   [`SUPERUSER`] logs in without a password (trust, local and loopback); the role
//!   [`PASSWORD_ROLE`] needs [`PASSWORD`] (SCRAM) on TCP, for authentication tests.
//! - [`shared`] is one cluster per test process, started on first use; a test asks it for
//!   a [`TestDatabase`] of its own, dropped (`WITH (FORCE)`) when the value is dropped.
//! - Test processes run no static destructors, so every cluster has a watchdog: a shell
//!   loop that stops the server and removes the temp dir once the test process is gone.
//!   A private cluster's `Drop` stops it at once.
//!
//! - [`TestStore`] is the store a registrar test runs on: SQLite or PostgreSQL, as
//!   `REGISTRAR_TEST_STORE` says.
//!
//! It must not: listen anywhere but 127.0.0.1 (and its socket in the temp dir), touch a
//! system cluster, or make durable writes (`fsync=off`: the data is thrown away).

mod test_store;

pub use test_store::{Backend, TestStore, BACKEND_VARIABLE};

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The superuser role, trusted on the socket and on loopback.
pub const SUPERUSER: &str = "registrar_test";
/// A login role that must give [`PASSWORD`] (scram-sha-256) on TCP.
pub const PASSWORD_ROLE: &str = "registrar_password";
/// [`PASSWORD_ROLE`]'s password.
pub const PASSWORD: &str = "throwaway-scram-secret";

/// Why a cluster did not start, stop or give a database; each says what and where.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries: neither /usr/lib/postgresql/<version>/bin/initdb nor \
         `pg_config --bindir` (install Debian's `postgresql` package)"
    )]
    NoServerBinaries,
    #[error("{what} ({path}): {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("the throwaway cluster on 127.0.0.1:{port}: {what}: {message}")]
    Sql {
        port: u16,
        what: String,
        message: String,
    },
}

/// A PostgreSQL server of its own in a temp dir, on 127.0.0.1.
pub struct Cluster {
    bin_dir: PathBuf,
    /// The temp dir: `data/`, the unix socket, the log and the TLS files.
    root: PathBuf,
    port: u16,
    /// The unprivileged user the server runs as when the test runs as root.
    run_as: Option<String>,
    watchdog: Mutex<Option<Child>>,
}

/// A fresh database in a cluster, dropped with `DROP DATABASE … WITH (FORCE)` on drop.
pub struct TestDatabase {
    name: String,
    port: u16,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The test process's shared cluster, started on first use. A failure to start panics
/// with the cause (initdb's or the server's own words): no test can run without it.
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| match Cluster::start() {
        Ok(cluster) => cluster,
        Err(error) => panic!("cannot start the throwaway PostgreSQL cluster: {error}"),
    })
}

impl Cluster {
    /// Starts a cluster without TLS.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::start_inner(None)
    }

    /// Starts a cluster with `ssl=on`, serving `cert_pem` (the chain) and `key_pem`.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<Cluster, ClusterError> {
        Cluster::start_inner(Some((cert_pem, key_pem)))
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The superuser's URL for `database`: `postgres://registrar_test@127.0.0.1:PORT/DB`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A fresh, empty database with a name no other call in this process gets. A failure
    /// panics with the server's own words (a test cannot go on without its database);
    /// [`Cluster::try_database`] returns it instead.
    pub fn database(&self) -> TestDatabase {
        match self.try_database() {
            Ok(database) => database,
            Err(error) => panic!("cannot create a test database: {error}"),
        }
    }

    /// [`Cluster::database`], returning the failure.
    pub fn try_database(&self) -> Result<TestDatabase, ClusterError> {
        let number = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{number}", std::process::id());
        let mut client = superuser_client(self.port, "postgres")?;
        // Copying the files of the empty template0 is a tenth of the time of the WAL-logged
        // copy PostgreSQL 15 makes by default; older servers know only the file copy.
        client
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 STRATEGY FILE_COPY"
            ))
            .or_else(|_| client.batch_execute(&format!("CREATE DATABASE \"{name}\"")))
            .map_err(|error| sql_error(self.port, format!("CREATE DATABASE {name}"), &error))?;
        Ok(TestDatabase {
            name,
            port: self.port,
        })
    }

    /// Stops the server (fast shutdown), keeping its data for [`Cluster::restart`].
    pub fn stop(&self) -> Result<(), ClusterError> {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn restart(&self) -> Result<(), ClusterError> {
        self.pg_ctl_start()
    }

    fn start_inner(tls: Option<(&str, &str)>) -> Result<Cluster, ClusterError> {
        let bin_dir = server_bin_dir()?;
        let run_as = running_as_root().then(|| "postgres".to_string());
        let root = tempfile::Builder::new()
            .prefix("throwaway-postgres-")
            .tempdir()
            .map_err(|source| io_error("cannot create the temp dir", std::env::temp_dir(), source))?
            .keep();
        let mut cluster = Cluster {
            bin_dir,
            root,
            port: 0,
            run_as,
            watchdog: Mutex::new(None),
        };
        // From here on, a failure removes the temp dir (Drop).
        cluster.spawn_watchdog()?;
        cluster.give_to_server_user(&cluster.root.clone())?;
        cluster.initdb()?;
        cluster.configure(tls)?;
        // A free port can be taken between our probe and the server's bind: try another.
        let mut attempts = 0;
        loop {
            cluster.port = free_loopback_port()?;
            cluster.write_port()?;
            // The log of this attempt alone says whether the port was taken.
            let _ = fs::remove_file(cluster.log_file());
            match cluster.pg_ctl_start() {
                Ok(()) => break,
                Err(_) if attempts < 5 && cluster.port_was_taken() => attempts += 1,
                Err(error) => return Err(error),
            }
        }
        let mut client = superuser_client(cluster.port, "postgres")?;
        client
            .batch_execute(&format!(
                "SET password_encryption = 'scram-sha-256'; \
                 CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"
            ))
            .map_err(|error| sql_error(cluster.port, "CREATE ROLE", &error))?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// A command running `program` of the server's bin dir, as the server user when root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        };
        // Its own process group: a Ctrl-C to the tests does not reach the server.
        command.process_group(0).stdin(Stdio::null());
        command
    }

    fn give_to_server_user(&self, path: &Path) -> Result<(), ClusterError> {
        if self.run_as.is_none() {
            return Ok(());
        }
        let (uid, gid) = postgres_user_ids()?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|source| io_error("cannot give to the postgres user", path, source))
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let mut command = self.server_command("initdb");
        command.arg("-D").arg(self.data_dir()).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(command, "initdb")
    }

    fn configure(&self, tls: Option<(&str, &str)>) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let hba = format!(
            "local all all trust\n\
             host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n\
             host all {PASSWORD_ROLE} ::1/128 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n\
             host all all ::1/128 trust\n"
        );
        self.write_server_file(&data.join("pg_hba.conf"), &hba, 0o600)?;
        let mut conf = format!(
            "\n# throwaway-postgres\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             include_if_exists = 'throwaway_port.conf'\n",
            self.root.display()
        );
        if let Some((cert, key)) = tls {
            let cert_path = self.root.join("server.crt");
            let key_path = self.root.join("server.key");
            self.write_server_file(&cert_path, cert, 0o600)?;
            self.write_server_file(&key_path, key, 0o600)?;
            conf.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert_path.display(),
                key_path.display()
            ));
        }
        let path = data.join("postgresql.conf");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| io_error("cannot open", &path, source))?;
        file.write_all(conf.as_bytes())
            .map_err(|source| io_error("cannot write", &path, source))
    }

    fn write_port(&self) -> Result<(), ClusterError> {
        let path = self.data_dir().join("throwaway_port.conf");
        self.write_server_file(&path, &format!("port = {}\n", self.port), 0o600)
    }

    fn write_server_file(&self, path: &Path, text: &str, mode: u32) -> Result<(), ClusterError> {
        fs::write(path, text).map_err(|source| io_error("cannot write", path, source))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|source| io_error("cannot set the mode of", path, source))?;
        self.give_to_server_user(path)
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.log_file();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log.display().to_string()])
            .map_err(|error| match error {
                ClusterError::Command {
                    command,
                    status,
                    output,
                } => ClusterError::Command {
                    command,
                    status,
                    output: format!("{output}; server log: {}", self.log_tail()),
                },
                other => other,
            })
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), ClusterError> {
        let mut command = self.server_command("pg_ctl");
        command.arg("-D").arg(self.data_dir()).args(args);
        run(command, &format!("pg_ctl {}", args[0]))
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    fn port_was_taken(&self) -> bool {
        fs::read_to_string(self.log_file())
            .map(|log| log.contains("could not bind") || log.contains("already in use"))
            .unwrap_or(false)
    }

    /// A detached shell that waits for this process to end, then stops the server at once
    /// and removes the temp dir.
    fn spawn_watchdog(&self) -> Result<(), ClusterError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let as_user = match &self.run_as {
            Some(user) => format!("runuser -u {user} -- "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; \
             rm -rf '{root}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data_dir().display(),
            root = self.root.display(),
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| io_error("cannot start the watchdog shell", "sh", source))?;
        *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }
}

impl Drop for Cluster {
    /// A private cluster stops at once (`immediate`) and its temp dir goes.
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut watchdog) = watchdog {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.data_dir().join("postmaster.pid").exists() {
            let mut command = self.server_command("pg_ctl");
            command
                .arg("-D")
                .arg(self.data_dir())
                .args(["stop", "-m", "immediate", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = command.status();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl TestDatabase {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The superuser's URL: `postgres://registrar_test@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}",
            self.port, self.name
        )
    }

    /// A connection as the superuser, without TLS.
    pub fn client(&self) -> Result<postgres::Client, ClusterError> {
        superuser_client(self.port, &self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = superuser_client(self.port, "postgres") {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn superuser_client(port: u16, database: &str) -> Result<postgres::Client, ClusterError> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(SUPERUSER)
        .dbname(database)
        .connect_timeout(std::time::Duration::from_secs(10))
        .connect(postgres::NoTls)
        .map_err(|error| sql_error(port, format!("connect to {database}"), &error))
}

fn sql_error(port: u16, what: impl Into<String>, error: &postgres::Error) -> ClusterError {
    let message = match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => error.to_string(),
    };
    ClusterError::Sql {
        port,
        what: what.into(),
        message,
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb`, else `pg_config
/// --bindir`'s.
fn server_bin_dir() -> Result<PathBuf, ClusterError> {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    if let Ok(output) = output {
        let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && bin.join("initdb").is_file() {
            return Ok(bin);
        }
    }
    Err(ClusterError::NoServerBinaries)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_user_ids() -> Result<(u32, u32), ClusterError> {
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(|source| io_error("cannot read", "/etc/passwd", source))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| ClusterError::Command {
            command: "find the postgres user".to_string(),
            status: "missing".to_string(),
            output: "running as root, the server needs the unprivileged user `postgres` in \
                     /etc/passwd (Debian's postgresql package creates it)"
                .to_string(),
        })
}

fn free_loopback_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| io_error("cannot bind a free port", "127.0.0.1:0", source))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|source| io_error("cannot read the bound port", "127.0.0.1:0", source))
}

fn run(mut command: Command, what: &str) -> Result<(), ClusterError> {
    let output = command
        .output()
        .map_err(|source| io_error("cannot run", what, source))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Err(ClusterError::Command {
        command: what.to_string(),
        status: output.status.to_string(),
        output: text.split_whitespace().collect::<Vec<_>>().join(" "),
    })
}

fn io_error(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> ClusterError {
    ClusterError::Io {
        what,
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_says_which_and_what_it_printed_on_one_line() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'initdb: error: cannot create' >&2; echo '  data dir' >&2; exit 3",
        ]);
        let error = run(command, "initdb").unwrap_err().to_string();
        assert_eq!(
            error,
            "initdb failed (exit status: 3): initdb: error: cannot create data dir"
        );
    }

    #[test]
    fn the_server_binaries_are_found() {
        let bin = server_bin_dir().unwrap();
        assert!(bin.join("initdb").is_file() && bin.join("pg_ctl").is_file());
    }
}
