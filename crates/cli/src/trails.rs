//! `cairn trails ...`: trail administration against a running server.

use crate::client::percent_encode;
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TrailsArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint(), global = true)]
    endpoint: String,
    /// Output format: json, table or text.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json, global = true)]
    output: crate::output::Output,
    #[command(subcommand)]
    command: TrailsCommand,
}

#[derive(Debug, clap::Args)]
struct Settings {
    /// Deliver into this directory (absolute path, on the server's machine).
    #[arg(long)]
    local_directory: Option<PathBuf>,
    /// Deliver into this bucket of the server's configured S3-compatible store.
    #[arg(long)]
    s3_bucket_name: Option<String>,
    /// Key prefix.
    #[arg(long)]
    s3_key_prefix: Option<String>,
    /// Record every region (`--is-multi-region-trail false` to turn off).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    is_multi_region_trail: Option<bool>,
    /// Record global services' events (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    include_global_service_events: Option<bool>,
    /// Write signed digest files.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    enable_log_file_validation: Option<bool>,
    /// Cover every account of the organization.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    is_organization_trail: Option<bool>,
    /// Cairn's: write who ingested each event into the log files (`cairnIngestedBy`, beside
    /// `Records`; off by default, the files then being CloudTrail's format exactly).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    include_ingested_by: Option<bool>,
}

impl Settings {
    fn to_json(&self, name: &str) -> Value {
        let mut out = json!({ "Name": name });
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                out[key] = value;
            }
        };
        set(
            "LocalDirectory",
            self.local_directory.as_ref().map(|d| json!(d)),
        );
        set(
            "S3BucketName",
            self.s3_bucket_name.as_ref().map(|b| json!(b)),
        );
        set("S3KeyPrefix", self.s3_key_prefix.as_ref().map(|p| json!(p)));
        set(
            "IsMultiRegionTrail",
            self.is_multi_region_trail.map(Value::Bool),
        );
        set(
            "IncludeGlobalServiceEvents",
            self.include_global_service_events.map(Value::Bool),
        );
        set(
            "EnableLogFileValidation",
            self.enable_log_file_validation.map(Value::Bool),
        );
        set(
            "CairnIncludeIngestedBy",
            self.include_ingested_by.map(Value::Bool),
        );
        set(
            "IsOrganizationTrail",
            self.is_organization_trail.map(Value::Bool),
        );
        out
    }
}

#[derive(Debug, Subcommand)]
enum TrailsCommand {
    /// Create a trail (it starts logging with `start-logging`).
    Create {
        /// Trail name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Change a trail's settings (only the given ones).
    Update {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// Delete a trail (delivered files stay).
    Delete {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// List trails.
    List,
    /// Show a trail.
    Describe {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// Show a trail's logging and delivery status.
    Status {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// Start logging.
    StartLogging {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// Stop logging.
    StopLogging {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// Set event selectors: `--event-selectors JSON` or `--advanced-event-selectors JSON`
    /// (`@file` reads a file), in CloudTrail's JSON shape.
    PutEventSelectors {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
        /// Basic selectors (JSON array).
        #[arg(long, conflicts_with = "advanced_event_selectors")]
        event_selectors: Option<String>,
        /// Advanced selectors (JSON array).
        #[arg(long)]
        advanced_event_selectors: Option<String>,
    },
    /// Show event selectors.
    GetEventSelectors {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
    /// Deliver what is pending now.
    Flush {
        /// Trail name or ARN.
        #[arg(long)]
        name: String,
    },
}

fn json_argument(text: &str) -> anyhow::Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => text.to_owned(),
    };
    serde_json::from_str(&text).context("selectors are not valid JSON")
}

pub async fn run(args: TrailsArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = format!("{}/v1/trails", args.endpoint.trim_end_matches('/'));
    let output = args.output;
    let url = |name: &str, tail: &str| format!("{base}/{}{tail}", percent_encode(name));
    let request = match &args.command {
        TrailsCommand::Create { name, settings } => {
            client.post(&base).body(settings.to_json(name).to_string())
        }
        TrailsCommand::Update { name, settings } => client
            .patch(url(name, ""))
            .body(settings.to_json(name).to_string()),
        TrailsCommand::Delete { name } => client.delete(url(name, "")),
        TrailsCommand::List => client.get(&base),
        TrailsCommand::Describe { name } => client.get(url(name, "")),
        TrailsCommand::Status { name } => client.get(url(name, "/status")),
        TrailsCommand::StartLogging { name } => client.post(url(name, "/start-logging")),
        TrailsCommand::StopLogging { name } => client.post(url(name, "/stop-logging")),
        TrailsCommand::PutEventSelectors {
            name,
            event_selectors,
            advanced_event_selectors,
        } => {
            let body = match (event_selectors, advanced_event_selectors) {
                (Some(basic), None) => json!({ "EventSelectors": json_argument(basic)? }),
                (None, Some(advanced)) => {
                    json!({ "AdvancedEventSelectors": json_argument(advanced)? })
                }
                _ => bail!("give --event-selectors or --advanced-event-selectors"),
            };
            client
                .put(url(name, "/event-selectors"))
                .body(body.to_string())
        }
        TrailsCommand::GetEventSelectors { name } => client.get(url(name, "/event-selectors")),
        TrailsCommand::Flush { name } => client.post(url(name, "/flush")),
    };
    let value = crate::client::call(request, &base).await?;
    crate::output::print(&value, output)
}
