//! `cairn`: the one binary. `serve` runs the server; the other commands are its clients.

mod client;
mod filter;
mod iam;
mod input;
mod lake;
mod monitoring;
mod query;
mod trails;
mod validate;

/// jemalloc instead of the system allocator: glibc's per-thread arenas kept hundreds of MiB of
/// a load peak after it ended (RELIABILITY.md, "Memory"); jemalloc's background threads give
/// freed pages back to the system.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use cairn_client::{output, profile, sign};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Cairn: a self-hosted audit trail that speaks CloudTrail.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server on a data directory (the embedded default: nothing else to install).
    Serve(ServeArgs),
    /// Send events from files (JSON array, {"Records":[...]} log files, NDJSON; gzip detected).
    PutEvents(client::PutEventsArgs),
    /// Search Event history, like `aws cloudtrail lookup-events`.
    LookupEvents(client::LookupArgs),
    /// The server's state: ready or why not, each WAL consumer's position, lag and failure
    /// (which one holds the write-ahead log), free space. Exit 1 when not ready.
    Status(client::StatusArgs),
    /// Administer trails: create, update, delete, list, describe, status, start-logging,
    /// stop-logging, put-event-selectors, get-event-selectors, flush.
    Trails(trails::TrailsArgs),
    /// Validate a trail's log files against its signed digests, like
    /// `aws cloudtrail validate-logs` but stricter (exit 1 when anything is invalid or missing).
    ValidateLogs(validate::ValidateArgs),
    /// Digest signing keys: list (like ListPublicKeys) and rotate.
    Keys(validate::KeysArgs),
    /// Identities: create-user, list-users, delete-user, create-access-key, list-access-keys,
    /// update-access-key, delete-access-key, attach-policy, detach-policy, put-user-policy,
    /// delete-user-policy, list-attached-policies, list-user-policies, whoami.
    Iam(iam::IamArgs),
    /// SQL over the event data stores (`cairn query "SELECT ... FROM store"`), or over a
    /// CloudTrail tree in place: `cairn query --source DIR|s3://bucket/prefix "SQL"` (table `events`).
    Query(query::QueryArgs),
    /// Event data stores (the Lake): create, list, get, update, delete.
    Stores(lake::StoresArgs),
    /// Load a CloudTrail tree (directory or s3://bucket/prefix) into an event data store,
    /// reporting what it did not take and why.
    Import(lake::ImportArgs),
    /// Log groups fed by trails: create-log-group, describe-log-groups, filter-log-events,
    /// put-metric-filter.
    Logs(monitoring::LogsArgs),
    /// Metric statistics: get-statistics.
    Metrics(monitoring::MetricsArgs),
    /// Alarms: install-cis, list.
    Alarms(monitoring::AlarmsArgs),
    /// Notification topics: create, list.
    Topics(monitoring::TopicsArgs),
    /// The CloudWatch Logs filter pattern language: `cairn filter test --pattern P FILE...`.
    #[command(subcommand)]
    Filter(filter::FilterCommand),
    /// Measure Cairn against baselines measured in the same run.
    #[command(subcommand)]
    Bench(cairn_bench::BenchCommand),
    /// Shell completions: `cairn completions bash > /etc/bash_completion.d/cairn` (or zsh,
    /// fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory [default: ./cairn-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:7474].
    #[arg(long)]
    listen: Option<String>,
    /// The deployment's 12-digit account id [default: random, created at first start].
    #[arg(long)]
    account_id: Option<String>,
    /// Region for integration events and default lookups [default: us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging("info", args.log_format);
    let mut raw = match &args.config {
        Some(path) => cairn_server::config::RawConfig::from_file(path)?,
        None => cairn_server::config::RawConfig::default(),
    };
    if args.data_dir.is_some() {
        raw.data_dir = args.data_dir;
    }
    if args.listen.is_some() {
        raw.listen = args.listen;
    }
    if args.account_id.is_some() {
        raw.account_id = args.account_id;
    }
    if args.region.is_some() {
        raw.region = args.region;
    }
    if args.tls_cert.is_some() {
        raw.tls_cert = args.tls_cert;
    }
    if args.tls_key.is_some() {
        raw.tls_key = args.tls_key;
    }
    let mut config = raw.resolve()?;
    // Test failpoints come from the environment only, never from configuration files.
    let failpoint = std::env::var("CAIRN_FAILPOINT").unwrap_or_default();
    config.failpoint_abort_after_upload = failpoint == "abort_after_upload";
    config.failpoint_lake_abort_after_write = failpoint == "lake_abort_after_write";
    let data_dir = config.data_dir.clone();
    let tls = config.tls.is_some();
    let clock = std::sync::Arc::new(cairn_model::SystemClock);
    let mut running = cairn_server::start(config, clock).await?;
    eprintln!(
        "cairn listening on {}://{} (data directory {}, account {})",
        if tls { "https" } else { "http" },
        running.local_addr,
        data_dir.display(),
        running.account_id
    );
    if let Some(path) = &running.admin_credentials {
        eprintln!(
            "first start: administrator credentials written to {} (mode 0600); the cairn commands find them there when run from this directory, the AWS CLI with AWS_SHARED_CREDENTIALS_FILE={}",
            path.display(),
            path.display()
        );
    }
    eprintln!("every call but /healthz and /readyz must be signed (AWS SigV4)");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: shutting down");
            running.shutdown().await;
        }
        _ = terminate.recv() => {
            eprintln!("terminated: shutting down");
            running.shutdown().await;
        }
        _ = running.wait() => anyhow::bail!("the HTTP server stopped unexpectedly"),
    }
    Ok(())
}

/// A closed pipe (`cairn ... | head`) ends the command quietly, as it ends any Unix tool:
/// `print!` panics on a write error, and that one panic is not a failure of Cairn's.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    // Purge freed memory in the background, not only when the next allocation comes.
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    // Blocking work (parsing bodies, redb reads, file I/O) queues beyond 64 threads instead
    // of adding a thread, and so a stack and an allocator cache, per waiting request.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cairn: starting the async runtime failed: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
            Command::PutEvents(args) => {
                init_logging("warn", LogFormat::Text);
                client::put_events(args).await
            }
            Command::Status(args) => {
                init_logging("warn", LogFormat::Text);
                client::status(args).await
            }
            Command::LookupEvents(args) => {
                init_logging("warn", LogFormat::Text);
                client::lookup_events(args)
                    .await
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Trails(args) => {
                init_logging("warn", LogFormat::Text);
                trails::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::ValidateLogs(args) => {
                init_logging("warn", LogFormat::Text);
                validate::validate_logs(args).await
            }
            Command::Iam(args) => {
                init_logging("warn", LogFormat::Text);
                iam::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Filter(command) => filter::run(command),
            Command::Query(args) => {
                init_logging("warn", LogFormat::Text);
                query::run(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Stores(args) => {
                init_logging("warn", LogFormat::Text);
                lake::stores(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Import(args) => {
                init_logging("warn", LogFormat::Text);
                lake::import(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Logs(args) => monitoring::logs(args).await.map(|()| ExitCode::SUCCESS),
            Command::Metrics(args) => monitoring::metrics(args).await.map(|()| ExitCode::SUCCESS),
            Command::Alarms(args) => monitoring::alarms(args).await.map(|()| ExitCode::SUCCESS),
            Command::Topics(args) => monitoring::topics(args).await.map(|()| ExitCode::SUCCESS),
            Command::Keys(args) => {
                init_logging("warn", LogFormat::Text);
                validate::keys(args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "cairn",
                    &mut std::io::stdout(),
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Bench(command) => {
                init_logging("warn", LogFormat::Text);
                cairn_bench::run(command)
                    .await
                    .context("benchmark failed")
                    .map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("cairn: {e:#}");
            ExitCode::from(2)
        }
    }
}
