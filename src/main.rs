#[cfg(feature = "bench")]
mod bench;
mod passwd;
mod request;
#[cfg(feature = "bench")]
mod soak;

use clap::{Parser, Subcommand};
use m2mhub::app::Appliance;
use m2mhub::config::Config;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// A oneM2M CSE and an MQTT broker in one process.
#[derive(Parser)]
#[command(name = "m2mhub", version, about)]
struct Cli {
    /// Configuration file (default: ./config.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default).
    Run,
    /// Print the effective configuration, or say which key or value is wrong.
    CheckConfig,
    /// Check the whole database (SQLite's integrity_check, every index against its table):
    /// prints "ok" and exits 0, or the problems and exits 1. Stop the service first: the
    /// database is locked while it runs. Every start runs the quicker quick_check.
    CheckDb,
    /// Add a credential to a password file (Mosquitto's format), or change its password.
    /// Reads the password from the terminal, or from standard input in scripts.
    Passwd(passwd::Args),
    /// Send one oneM2M request over MQTT or HTTP and print the response primitive (the curl
    /// of oneM2M). Exits 1 when the response is an error (rsc >= 4000), 3 when none came.
    Request(Box<request::Args>),
    /// Measure this machine: the broker's echo ceiling, then the CSE on the same load
    /// (create contentInstance, retrieve la, retrieve a container, discovery), bounded in
    /// count and time. Prints a table, or JSON with --json.
    #[cfg(feature = "bench")]
    Bench(Box<bench::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client and a self-contained measurement: the appliance's configuration plays no part.
    let cli = match cli.command {
        Some(Command::Request(args)) => return request::run(*args),
        Some(Command::Passwd(args)) => return passwd::run(args),
        #[cfg(feature = "bench")]
        Some(Command::Bench(args)) => return run_bench(*args),
        _ => cli,
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("m2mhub: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Command::Run => run(config, cli.config),
        Command::CheckDb => check_db(&config),
        Command::Request(args) => request::run(*args),
        Command::Passwd(args) => passwd::run(args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => run_bench(*args),
    }
}

fn check_db(config: &Config) -> ExitCode {
    let path = &config.storage.path;
    if !path.exists() {
        eprintln!("m2mhub: no database at {}", path.display());
        return ExitCode::FAILURE;
    }
    // Opening runs the quick check (and refuses a damaged file) and takes the lock.
    let store = match m2mhub::store::Store::open(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("m2mhub: {e}");
            return ExitCode::FAILURE;
        }
    };
    let found = store.integrity_check();
    store.close();
    match found {
        Ok(problems) if problems.is_empty() => {
            println!("ok: {} passed integrity_check", path.display());
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            for p in problems {
                println!("{p}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("m2mhub: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "bench")]
fn run_bench(args: bench::Args) -> ExitCode {
    let json = args.json;
    if let Some(seconds) = args.soak {
        let soaked = tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(soak::run(seconds)));
        return match soaked {
            Ok(s) if json => {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(s) => {
                print!("{}", soak::table(&s));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("m2mhub bench --soak: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match bench::run(args) {
        Ok(report) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", bench::table(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m2mhub bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Changes the log filter of the running process (SIGHUP).
type LogReload = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The filter: RUST_LOG wins over the configured level. rumqttd logs every short-lived
/// connection as an ERROR; its messages are off unless asked for
/// (`log.level = "info,rumqttd=warn"`).
fn log_filter(config: &Config) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| {
            EnvFilter::try_new(format!("rumqttd=off,{}", config.log.level))
                .unwrap_or_else(|_| EnvFilter::new("info"))
        })
}

fn init_logging(config: &Config) -> LogReload {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, reload) = tracing_subscriber::reload::Layer::new(log_filter(config));
    // journald adds its own timestamps and has no use for colour codes.
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    reload
}

/// How long a graceful shutdown may take before the process ends anyway.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

fn run(config: Config, path: Option<PathBuf>) -> ExitCode {
    let reload = init_logging(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        // Before anything says ready: a SIGTERM right after READY=1 (or the ready log line)
        // must find its handler, not end the process by the signal's default action.
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for signals");
                return ExitCode::FAILURE;
            }
        };
        let app = match Appliance::start(&config).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!("cannot start: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        // systemd (Type=notify): the listeners are bound and the store is open.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        signals.wait_for_stop(&reload, path.as_deref(), &app).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        tracing::info!("shutting down: no new connections, finishing requests in progress");
        let drained = app.shutdown(SHUTDOWN_BOUND).await;
        if drained {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        } else {
            // systemd marks the stop as failed: some requests were cut off unanswered (what
            // was acknowledged is on disk anyway).
            tracing::error!("stopped with requests still in progress after {SHUTDOWN_BOUND:?}");
            ExitCode::FAILURE
        }
    });
    // Work still stuck on a blocking thread (a hung disk) does not keep the process.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

/// The signals the appliance answers to.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT. On SIGHUP, reads the password and ACL files again and
    /// the configuration's log level; connections stay up. Everything else needs a restart.
    async fn wait_for_stop(
        &mut self,
        reload: &LogReload,
        path: Option<&std::path::Path>,
        app: &Appliance,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    match app.reload_credentials() {
                        Ok(()) => tracing::info!("reloaded the password and ACL files"),
                        Err(e) => tracing::warn!("SIGHUP: credentials not reloaded, the old ones stay: {e}"),
                    }
                    match Config::load(path) {
                        Ok(config) => match reload.reload(log_filter(&config)) {
                            Ok(()) => tracing::info!(level = %config.log.level, "reloaded the log level (other settings need a restart)"),
                            Err(e) => tracing::warn!(error = %e, "cannot change the log level"),
                        },
                        Err(e) => tracing::warn!("SIGHUP: configuration not reloaded: {e}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
