//! The `registrar` binary: parse the command line, run one command, print any error as
//! one line on stderr and exit 1 (2 for `--detailed-exitcode` with changes).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use registrar::app::{self, Context, Outcome};
use registrar::cli::{Cli, ColorChoice, Command, StateCommand};
use registrar::core::state::RegistrationSource;
use registrar::render::Color;

/// mimalloc: a plan over a large directory allocates millions of small strings, and the
/// system allocator spends a quarter of the run on them. The `system-allocator` feature
/// turns it off, for heap profilers.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // SAFETY: the program has one thread yet, and nothing has used SQLite.
    unsafe { registrar::store::configure_sqlite() };
    registrar::store::return_freed_memory_promptly();
    let cli = Cli::parse();
    // Said once, before anything reads the store.
    for warning in cli.common.state.warnings() {
        eprintln!("warning: {warning}");
    }
    let color = match cli.common.color {
        ColorChoice::Always => Color::On,
        ColorChoice::Never => Color::Off,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            if std::io::stdout().is_terminal() && !no_color {
                Color::On
            } else {
                Color::Off
            }
        }
    };
    let takes_rev = matches!(
        cli.command,
        Command::Validate { .. }
            | Command::Plan { .. }
            | Command::Apply { .. }
            | Command::Status { .. }
            | Command::Export { .. }
            | Command::Drift { .. }
            | Command::Discover { .. }
            | Command::Run { .. }
            | Command::Serve { .. }
    );
    if let (Some(rev), false) = (&cli.common.rev, takes_rev) {
        eprintln!(
            "error: --rev {rev}: only validate, plan, apply, status, export, discover, drift, \
             run and serve read a revision"
        );
        return ExitCode::FAILURE;
    }
    let context = Context {
        config_dir: cli.common.config,
        state: cli.common.state,
        color,
        rev: cli.common.rev,
    };
    let result = match cli.command {
        Command::Validate { sources } => app::validate(&context, &sources),
        Command::Plan {
            format,
            out,
            detailed_exitcode,
            base,
            trusted_rev,
            trust_head,
            ldif_base,
            mode,
        } => {
            // A review reads the head's LDAP sources with trusted connection settings:
            // --trusted-rev's, or the base's unless --trust-head.
            let trusted = trusted_rev
                .as_deref()
                .or(base.as_deref().filter(|_| !trust_head));
            let review = app::Review {
                base: base.as_deref(),
                trusted,
            };
            app::plan_command(
                &context,
                format,
                out.as_deref(),
                detailed_exitcode,
                Some(&review),
                &ldif_base,
                mode,
            )
        }
        Command::Apply {
            plan,
            allow_deletes,
            mode,
            auto_approve,
        } => {
            let approval = if auto_approve {
                app::Approval::Auto
            } else {
                app::Approval::Ask
            };
            app::apply_command(&context, plan.as_deref(), allow_deletes, mode, approval)
        }
        Command::State(StateCommand::Show { format }) => app::state_show(&context, format),
        Command::State(StateCommand::Register {
            protocol,
            im_name,
            account,
            source,
            allow_protected,
        }) => {
            let source =
                RegistrationSource::from_name(&source).unwrap_or(RegistrationSource::Manual);
            let registration = app::UnmanagedRegistration {
                protocol: &protocol,
                im_name: &im_name,
                account_dn: &account,
                source,
                per_account: None,
            };
            let allow = if allow_protected {
                app::AllowProtected::Record
            } else {
                app::AllowProtected::Refuse
            };
            app::state_register(&context, registration, allow)
        }
        Command::State(StateCommand::Migrate { to }) => app::state_migrate(&context, &to),
        Command::Status { format } => app::status(&context, format),
        Command::Export {
            source,
            format,
            out,
        } => app::export_source(&context, &source, format, out.as_deref()),
        Command::Drift {
            format,
            out,
            detailed_exitcode,
        } => app::drift_command(&context, format, out.as_deref(), detailed_exitcode),
        Command::Discover { source, format } => app::discover(&context, &source, format),
        Command::Run { listen, once } => {
            app::run_command(&context, app::RunOptions { listen, once })
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
        } => app::serve_command(
            &context,
            app::ServeOptions {
                listen,
                tls: tls_cert.zip(tls_key),
            },
        ),
        Command::Show { plan, format } => app::show_plan(&context, &plan, format),
        Command::Schema => app::schema(),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
