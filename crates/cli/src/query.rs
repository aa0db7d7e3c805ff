//! `cairn query "SQL"`: SQL over the server's event data stores (StartQuery, then
//! GetQueryResults), or with `--source DIR|s3://bucket/prefix` over a CloudTrail tree in place
//! (raw mode, the table `events`).

use crate::client::{call, http};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryOutput {
    /// A text table.
    Table,
    /// One JSON object per row (values as text; nulls as null).
    Json,
    /// CSV with a header.
    Csv,
    /// Tab-separated values, no header (nulls empty).
    Text,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Query a CloudTrail tree in place instead of the server's stores: a directory or
    /// `s3://bucket/prefix` (credentials and endpoint from the AWS_* environment variables). The
    /// tree is the table `events`.
    #[arg(long)]
    source: Option<String>,
    /// Raw mode: how long after its events a log file may have been delivered, in hours, for
    /// skipping files by an upper bound on `eventTime` (`none`: never skip on it).
    #[arg(long, default_value = "24")]
    delivery_bound_hours: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryOutput::Table)]
    output: QueryOutput,
    /// Server endpoint (store queries).
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
    /// The query, e.g. `SELECT eventName, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC`.
    sql: String,
}

type Row = cairn_lake::query::TextRow;

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Prints rows in `output` form.
pub fn print_rows(columns: &[String], rows: &[Row], output: QueryOutput) {
    match output {
        QueryOutput::Text => {
            for row in rows {
                println!(
                    "{}",
                    row.iter()
                        .map(|(_, v)| v.as_deref().unwrap_or("").replace(['\t', '\n'], " "))
                        .collect::<Vec<_>>()
                        .join("\t")
                );
            }
        }
        QueryOutput::Json => {
            for row in rows {
                let object: serde_json::Map<String, Value> = row
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect();
                println!("{}", Value::Object(object));
            }
        }
        QueryOutput::Csv => {
            println!(
                "{}",
                columns
                    .iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            for row in rows {
                println!(
                    "{}",
                    row.iter()
                        .map(|(_, v)| csv_field(v.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        QueryOutput::Table => {
            let cell = |v: &Option<String>| v.clone().unwrap_or_default().replace('\n', " ");
            let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
            for row in rows {
                for (i, (_, v)) in row.iter().enumerate() {
                    if let Some(w) = widths.get_mut(i) {
                        *w = (*w).max(cell(v).chars().count());
                    }
                }
            }
            let rule = format!(
                "+{}+",
                widths
                    .iter()
                    .map(|w| "-".repeat(w + 2))
                    .collect::<Vec<_>>()
                    .join("+")
            );
            let line = |cells: Vec<String>| {
                format!(
                    "| {} |",
                    cells
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect::<Vec<_>>()
                        .join(" | ")
                )
            };
            println!("{rule}");
            println!("{}", line(columns.to_vec()));
            println!("{rule}");
            for row in rows {
                println!("{}", line(row.iter().map(|(_, v)| cell(v)).collect()));
            }
            println!("{rule}");
        }
    }
}

/// The tree a `--source` names.
pub fn tree_source(source: &str) -> anyhow::Result<cairn_lake::raw::TreeSource> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("--source {source:?} names no bucket (s3://bucket/prefix)");
        }
        return Ok(cairn_lake::raw::TreeSource::Objects {
            store: crate::validate::s3_from_env(bucket)?,
            prefix: prefix.trim_end_matches('/').to_owned(),
        });
    }
    let dir = std::path::PathBuf::from(source);
    if !dir.is_dir() {
        bail!("--source {source:?} is not a directory");
    }
    Ok(cairn_lake::raw::TreeSource::Dir(dir))
}

fn delivery_bound(text: &str) -> anyhow::Result<Option<i64>> {
    if text == "none" {
        return Ok(None);
    }
    let hours: u32 = text.parse().map_err(|_| {
        anyhow::anyhow!("--delivery-bound-hours must be a number of hours or none, got {text:?}")
    })?;
    Ok(Some(i64::from(hours) * 3_600_000))
}

/// `cairn query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    match &args.source {
        Some(source) => raw(&args, source).await,
        None => on_server(&args).await,
    }
}

async fn raw(args: &QueryArgs, source: &str) -> anyhow::Result<()> {
    let tree = tree_source(source)?;
    let bound = delivery_bound(&args.delivery_bound_hours)?;
    let (batches, stats, report) = cairn_lake::query_tree(tree, &args.sql, bound)
        .await
        .with_context(|| format!("querying {source}"))?;
    let rows = cairn_lake::query::rows_as_text(&batches)?;
    print_rows(
        &cairn_lake::query::column_names(&batches),
        &rows,
        args.output,
    );
    for (file, why) in &report.malformed_files {
        eprintln!("skipped {file}: {why}");
    }
    eprintln!(
        "{} of {} log files read ({} pruned by key, {} other files skipped, {} files and {} records ruled out by text search), {:.1} MB, {} events scanned, {} matched, {} aws:* and {} malformed records left out, {} damaged files, {:.2} s",
        report.files_read,
        report.files_listed,
        report.files_pruned,
        report.skipped,
        report.files_ruled_out,
        report.records_ruled_out,
        report.bytes as f64 / 1e6,
        stats.events_scanned,
        stats.events_matched,
        report.added.foreign,
        report.added.malformed,
        report.malformed_files.len(),
        stats.execution_ms as f64 / 1000.0
    );
    Ok(())
}

async fn on_server(args: &QueryArgs) -> anyhow::Result<()> {
    let base = args.endpoint.trim_end_matches('/');
    let client = http()?;
    let started = call(
        client
            .post(format!("{base}/v1/queries"))
            .body(json!({ "QueryStatement": args.sql }).to_string()),
        base,
    )
    .await?;
    let id = started["QueryId"]
        .as_str()
        .context("the server answered no QueryId")?
        .to_owned();
    let described = loop {
        let d = call(client.get(format!("{base}/v1/queries/{id}")), base).await?;
        match d["QueryStatus"].as_str() {
            Some("QUEUED" | "RUNNING") => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => break d,
        }
    };
    if described["QueryStatus"] != "FINISHED" {
        bail!(
            "query {id} {}: {}",
            described["QueryStatus"].as_str().unwrap_or("?"),
            described["ErrorMessage"].as_str().unwrap_or("")
        );
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/queries/{id}/results?maxResults=1000");
        if let Some(t) = &token {
            url.push_str(&format!("&nextToken={}", crate::client::percent_encode(t)));
        }
        let page = call(client.get(url), base).await?;
        for row in page["QueryResultRows"].as_array().into_iter().flatten() {
            rows.push(
                row.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .filter_map(|cell| cell.iter().next())
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                    .collect(),
            );
        }
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let columns: Vec<String> = rows
        .first()
        .map(|r| r.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    print_rows(&columns, &rows, args.output);
    let s = &described["QueryStatistics"];
    eprintln!(
        "query {id}: {} events scanned, {} matched, {:.1} MB scanned, {} ms",
        s["EventsScanned"],
        s["EventsMatched"],
        s["BytesScanned"].as_f64().unwrap_or(0.0) / 1e6,
        s["ExecutionTimeInMillis"]
    );
    Ok(())
}
