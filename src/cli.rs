//! The command line: clap definitions, kept close to what the user types. `main` turns
//! them into calls of the `app` commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::adapters::store::StoreLocation;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{DriftFormat, ExportFormat, ImportMode, PlanFormat, ShowFormat, StateFormat};

/// Declarative GitOps reconciliation of instant-messaging name registrations.
#[derive(Debug, Parser)]
#[command(name = "registrar", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The config directory: every *.yaml in it is read.
    #[arg(long, global = true, value_name = "DIR", default_value = "registrar")]
    pub config: PathBuf,
    /// The state store: a SQLite file, or a PostgreSQL database as a
    /// `postgres://USER@HOST:PORT/DB` URL (the password from PGPASSWORD or ~/.pgpass,
    /// never in the URL).
    #[arg(
        long,
        global = true,
        value_name = "FILE|URL",
        env = "REGISTRAR_STATE",
        default_value = "registrar.db",
        value_parser = parse_store_location
    )]
    pub state: StoreLocation,
    /// Read the config directory and every file it names from this git revision (a
    /// branch, tag, sha, HEAD~1, …) instead of the working tree; no checkout is made.
    /// For validate, plan, apply, status, export, discover, drift and run (`run --rev
    /// BRANCH` follows the branch).
    #[arg(long, global = true, value_name = "REV")]
    pub rev: Option<String>,
    /// Colour in text output (auto: when stdout is a terminal and NO_COLOR is unset).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the configuration (schema, filters, templates, references), and
    /// read its LDIF sources (syntax, change files, entry counts). LDAP servers are read
    /// only when --sources names them.
    Validate {
        /// LDAP sources to read as well (comma-separated names).
        #[arg(long, value_name = "NAME", value_delimiter = ',')]
        sources: Vec<String>,
    },
    /// Compute the plan: what apply would change in the store.
    Plan {
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also save the plan as JSON to FILE, for `apply --plan FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also show the effect of the change since git revision REV (e.g. main): the
        /// desired state at the head against the desired state at REV, each from its
        /// own files, with the diff of the changed config files.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
        /// Read the head's LDAP sources with the connection and credential settings of
        /// git revision REV (url, bind, password, TLS), as --base does with its base: a
        /// source whose settings the head changes is read with REV's, and an LDAP source
        /// REV lacks is not read. For a review without the effect, or with another base.
        #[arg(long, value_name = "REV", conflicts_with = "trust_head")]
        trusted_rev: Option<String>,
        /// With --base: read the head's LDAP sources with the head's own connection
        /// settings. Only for a head you trust: a pull request could point them at its
        /// own server and receive the bind password.
        #[arg(long, requires = "base")]
        trust_head: bool,
        /// With --format ldif: the DN under which the LDIF places the store's tree
        /// (ou=accounts, ou=registrations, ou=groups); its first RDN is ou=, o= or dc=.
        #[arg(long, value_name = "DN", default_value = crate::adapters::render::LdifBase::DEFAULT)]
        ldif_base: String,
        /// How ldif sources are read: full reads every file again; delta applies only the
        /// change files not yet imported to the snapshot the store kept at the last apply.
        #[arg(long, value_enum, default_value_t = ImportMode::Full)]
        mode: ImportMode,
    },
    /// Apply a saved plan exactly, or compute one and apply it.
    Apply {
        /// A plan saved by `plan --out`; refused if the store changed since, and with
        /// --rev, if it was made at another revision.
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Apply even when removals and deactivations exceed the policy's threshold.
        #[arg(long)]
        allow_deletes: bool,
        /// How ldif sources are read when no saved plan is given (see plan --mode).
        #[arg(long, value_enum, default_value_t = ImportMode::Full, conflicts_with = "plan")]
        mode: ImportMode,
        /// Apply the plan just made without asking. Without it, apply shows the plan and
        /// asks for 'yes' on the terminal, and refuses when there is none. A saved plan
        /// (--plan) is never asked about: it was reviewed.
        #[arg(long)]
        auto_approve: bool,
    },
    /// Report where the store departs from the last applied configuration: rows edited
    /// outside registrar, registrations of protected principals, rows whose owner rule is
    /// gone, pending directory changes, and (as information) unmanaged registrations.
    Drift {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
        format: DriftFormat,
        /// Write the report to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there is no drift, 2 when there is, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Read or record rows of the registration store, or copy it elsewhere.
    #[command(subcommand)]
    State(StateCommand),
    /// Show the last runs, the revision last applied, when each schedule fires next and
    /// the snapshots kept for --mode delta.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = StateFormat::Text)]
        format: StateFormat,
    },
    /// Write one source's entries as LDIF (what an ldif source reads) or JSON: the
    /// directory-agent path, run inside the intranet against the LDAP server.
    Export {
        /// The source to read.
        #[arg(long, value_name = "NAME")]
        source: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Ldif)]
        format: ExportFormat,
        /// Write to FILE (complete or not at all) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Read one whole source and list the objectClass chains and attributes it holds,
    /// with counts and a sample value each (never of passwords), then a starter config:
    /// object types and a mapping per attribute that likely holds IM names. The text
    /// output is itself YAML (the tables are comments).
    Discover {
        /// The source to read.
        #[arg(long, value_name = "NAME")]
        source: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StateFormat::Text)]
        format: StateFormat,
    },
    /// The controller: run the config's schedules until SIGTERM or SIGINT, reading the
    /// config again before every run (with --rev BRANCH from that branch, fetched first
    /// from its remote when it has one), one run at a time, each recorded in the run
    /// history. One controller per state file.
    Run {
        /// Serve /healthz, /livez and /metrics (Prometheus) over HTTP at ADDRESS:
        /// HOST:PORT, or a bare PORT for 127.0.0.1:PORT. No authentication: keep it on
        /// loopback or a private network.
        #[arg(long, value_name = "ADDRESS", value_parser = parse_listen)]
        listen: Option<SocketAddr>,
        /// Run each schedule's action once, now, in name order, then exit (1 if one
        /// failed or was blocked).
        #[arg(long, conflicts_with = "listen")]
        once: bool,
    },
    /// The employees' self-registration page and the lookup API, from the config's
    /// `self_service` section and the store, until SIGTERM or SIGINT. Also serves
    /// /livez, /healthz and /metrics.
    Serve {
        /// Where to listen: HOST:PORT, or a bare PORT for 127.0.0.1:PORT.
        #[arg(long, value_name = "ADDRESS", value_parser = parse_listen)]
        listen: SocketAddr,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key); cookies are
        /// then `Secure`.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Show a plan saved by `plan --out` as text or Markdown (like `terraform show`):
    /// reads the file only.
    Show {
        /// The saved plan.
        #[arg(value_name = "PLANFILE")]
        plan: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Print the JSON Schema of the config files.
    Schema,
}

/// A `--listen` value that is not an address.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not HOST:PORT or PORT (e.g. 127.0.0.1:9187, [::1]:9187, 9187)")]
pub struct ListenAddressError {
    text: String,
    #[source]
    error: std::net::AddrParseError,
}

/// `--listen`: `HOST:PORT`, `[v6]:PORT`, or a bare port on loopback.
fn parse_listen(text: &str) -> Result<SocketAddr, ListenAddressError> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|error| ListenAddressError {
        text: text.to_string(),
        error,
    })
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Show accounts, registrations and groups.
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = StateFormat::Text)]
        format: StateFormat,
    },
    /// Record a manual or self registration (never changed by registrar).
    Register {
        /// IM protocol, e.g. aol.
        #[arg(long)]
        protocol: String,
        /// The IM name.
        #[arg(long)]
        im_name: String,
        /// The account's DN; an unknown DN becomes an unmanaged account.
        #[arg(long, value_name = "DN")]
        account: String,
        /// manual or self.
        #[arg(long, value_parser = ["manual", "self"])]
        source: String,
        /// Record it even when the account is a protected principal (a policy entry or
        /// an LDAP source's bind_dn), which is otherwise refused; the run history and
        /// `drift` say so.
        #[arg(long)]
        allow_protected: bool,
    },
    /// Copy the whole store (accounts, registrations, groups, run history, drift hashes,
    /// kept snapshots) into an empty store: SQLite to PostgreSQL and back, or file to
    /// file. One transaction on the target, committed only when every table's rows and
    /// SHA-256 digest match the source's; a target holding any row is refused.
    Migrate {
        /// The target: a SQLite file (created if missing) or a `postgres://` URL.
        #[arg(long, value_name = "FILE|URL", value_parser = parse_store_location)]
        to: StoreLocation,
    },
}

/// `--state`: a `postgres://` URL or a file path.
fn parse_store_location(argument: &str) -> Result<StoreLocation, String> {
    StoreLocation::parse(argument).map_err(|e| e.to_string())
}
