//! `cairn stores ...` (event data stores) and `cairn import SOURCE --store NAME` (a CloudTrail
//! tree into a store) through the API.

use crate::client::{call, http, percent_encode};
use anyhow::Context;
use serde_json::{json, Value};
use std::io::IsTerminal;

#[derive(Debug, clap::Args)]
pub struct StoresArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint(), global = true)]
    endpoint: String,
    /// Output format: json, table or text.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json, global = true)]
    output: crate::output::Output,
    #[command(subcommand)]
    command: StoresCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StoresCommand {
    /// CreateEventDataStore. Without selectors it takes every management event.
    Create {
        #[arg(long)]
        name: String,
        /// Days events are kept: 7 to 3653. Default 2557 (seven years).
        #[arg(long)]
        retention_days: Option<u32>,
        /// Create without termination protection (it is on by default).
        #[arg(long)]
        no_termination_protection: bool,
        /// Advanced event selectors, as JSON (a list).
        #[arg(long)]
        advanced_event_selectors: Option<String>,
    },
    /// ListEventDataStores.
    List,
    /// GetEventDataStore.
    Get {
        /// Name, id or ARN.
        #[arg(long)]
        store: String,
    },
    /// UpdateEventDataStore.
    Update {
        #[arg(long)]
        store: String,
        #[arg(long)]
        retention_days: Option<u32>,
        /// `true` or `false`.
        #[arg(long)]
        termination_protection: Option<bool>,
        #[arg(long)]
        advanced_event_selectors: Option<String>,
    },
    /// DeleteEventDataStore (refused while termination protection is on).
    Delete {
        #[arg(long)]
        store: String,
    },
}

fn selectors(text: Option<String>) -> anyhow::Result<Value> {
    text.map(|t| {
        serde_json::from_str::<Value>(&t).context("--advanced-event-selectors must be JSON")
    })
    .transpose()
    .map(|v| v.unwrap_or(Value::Null))
}

/// `cairn stores ...`.
pub async fn stores(args: StoresArgs) -> anyhow::Result<()> {
    let base = args.endpoint.trim_end_matches('/').to_owned();
    let output = args.output;
    let client = http()?;
    let one = |s: &str| format!("{base}/v1/event-data-stores/{}", percent_encode(s));
    let out = match args.command {
        StoresCommand::Create {
            name,
            retention_days,
            no_termination_protection,
            advanced_event_selectors,
        } => {
            let body = json!({
                "Name": name,
                "RetentionPeriod": retention_days,
                "TerminationProtectionEnabled": !no_termination_protection,
                "AdvancedEventSelectors": selectors(advanced_event_selectors)?,
            });
            call(
                client
                    .post(format!("{base}/v1/event-data-stores"))
                    .body(body.to_string()),
                &base,
            )
            .await?
        }
        StoresCommand::List => {
            call(client.get(format!("{base}/v1/event-data-stores")), &base).await?
        }
        StoresCommand::Get { store } => call(client.get(one(&store)), &base).await?,
        StoresCommand::Update {
            store,
            retention_days,
            termination_protection,
            advanced_event_selectors,
        } => {
            let body = json!({
                "RetentionPeriod": retention_days,
                "TerminationProtectionEnabled": termination_protection,
                "AdvancedEventSelectors": selectors(advanced_event_selectors)?,
            });
            call(client.patch(one(&store)).body(body.to_string()), &base).await?
        }
        StoresCommand::Delete { store } => call(client.delete(one(&store)), &base).await?,
    };
    crate::output::print(&out, output)
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The tree: a directory or `s3://bucket/prefix` (AWS_* environment variables) of CloudTrail
    /// `.json.gz` log files, Cairn's or AWS's layout.
    source: String,
    /// The event data store (name, id or ARN).
    #[arg(long)]
    store: String,
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
    /// Largest request sent (bytes of records); must stay under the server's request limit.
    #[arg(long, default_value_t = 4 << 20)]
    batch_bytes: usize,
    /// Output format of the report: json, table or text (damaged files on stderr for
    /// table and text).
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json)]
    output: crate::output::Output,
    /// Same as `--output json` (kept for scripts written before `--output`).
    #[arg(long, hide = true)]
    json: bool,
}

/// What an import did and did not take.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ImportReport {
    log_files: usize,
    events_imported: u64,
    digest_files_skipped: usize,
    other_files_skipped: usize,
    damaged_files: Vec<(String, String)>,
    notification_records_skipped: u64,
    malformed_records_skipped: u64,
    /// Records the store's advanced event selectors do not choose.
    not_selected_skipped: u64,
    /// Records older than the store's retention.
    older_than_retention_skipped: u64,
    /// Records an earlier import already wrote into the store.
    already_imported_skipped: u64,
    parquet_files_written: u64,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    endpoint: &str,
    records: &mut Vec<String>,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let body = format!("{{\"Records\":[{}]}}", records.join(","));
    records.clear();
    let out = call(client.post(url).body(body), endpoint).await?;
    let n = |k: &str| out[k].as_u64().unwrap_or(0);
    report.events_imported += n("EventsImported");
    report.notification_records_skipped += n("NotificationRecordsSkipped");
    report.malformed_records_skipped += n("MalformedRecordsSkipped");
    report.not_selected_skipped += n("NotSelectedSkipped");
    report.older_than_retention_skipped += n("OlderThanRetentionSkipped");
    report.already_imported_skipped += n("AlreadyImportedSkipped");
    report.parquet_files_written += n("FilesWritten");
    Ok(())
}

/// `cairn import`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let source = crate::query::tree_source(&args.source)?;
    let base = args.endpoint.trim_end_matches('/').to_owned();
    let client = http()?;
    // The store must exist before anything is read.
    call(
        client.get(format!(
            "{base}/v1/event-data-stores/{}",
            percent_encode(&args.store)
        )),
        &base,
    )
    .await?;
    let url = format!(
        "{base}/v1/event-data-stores/{}/import",
        percent_encode(&args.store)
    );
    let listed = cairn_lake::raw::list(&source).await?;
    let mut report = ImportReport::default();
    let mut files = Vec::new();
    for location in listed {
        if cairn_lake::raw::classify(&location).is_some() {
            files.push(location);
        } else if location.contains("CloudTrail-Digest") {
            report.digest_files_skipped += 1;
        } else {
            report.other_files_skipped += 1;
        }
    }
    let bar = (std::io::stderr().is_terminal() && !args.json).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files · {msg} · {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut pending: Vec<String> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut inflater = cairn_lake::raw::Inflater::new();
    let mut buffer = Vec::new();
    for location in &files {
        let bytes = cairn_lake::raw::fetch(&source, location).await;
        let records = bytes.and_then(|b| {
            let json = cairn_lake::raw::gunzip(&b, &mut inflater, &mut buffer)?;
            #[derive(serde::Deserialize)]
            struct File {
                #[serde(rename = "Records")]
                records: Vec<Box<serde_json::value::RawValue>>,
            }
            serde_json::from_slice::<File>(json)
                .map(|f| f.records)
                .map_err(|e| format!("not a CloudTrail log file: {e}"))
        });
        match records {
            Ok(records) => {
                report.log_files += 1;
                for r in records {
                    let text = r.get().to_owned();
                    if pending_bytes + text.len() > args.batch_bytes && !pending.is_empty() {
                        send(&client, &url, &base, &mut pending, &mut report).await?;
                        pending_bytes = 0;
                    }
                    pending_bytes += text.len() + 1;
                    pending.push(text);
                }
            }
            Err(e) => report.damaged_files.push((location.clone(), e)),
        }
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("{} events imported", report.events_imported));
        }
    }
    send(&client, &url, &base, &mut pending, &mut report).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let output = if args.json {
        crate::output::Output::Json
    } else {
        args.output
    };
    if output == crate::output::Output::Json {
        crate::output::print(&serde_json::to_value(&report)?, output)?;
    } else {
        for (file, why) in &report.damaged_files {
            eprintln!("damaged {file}: {why}");
        }
        let summary = json!({
            "EventsImported": report.events_imported,
            "LogFiles": report.log_files,
            "ParquetFilesWritten": report.parquet_files_written,
            "DigestFilesSkipped": report.digest_files_skipped,
            "OtherFilesSkipped": report.other_files_skipped,
            "DamagedFiles": report.damaged_files.len(),
            "NotificationRecordsSkipped": report.notification_records_skipped,
            "MalformedRecordsSkipped": report.malformed_records_skipped,
            "NotSelectedSkipped": report.not_selected_skipped,
            "OlderThanRetentionSkipped": report.older_than_retention_skipped,
            "AlreadyImportedSkipped": report.already_imported_skipped,
        });
        crate::output::print(&summary, output)?;
    }
    Ok(())
}
