//! Client commands: `put-events` and `lookup-events`.

use crate::input::encode_chunk;
use crate::sign::SendSigned;
use anyhow::{bail, Context};
pub use cairn_client::http::{error_text, percent_encode};
use serde::Deserialize;
use serde_json::Value;
use std::process::ExitCode;

/// Default server endpoint.

#[derive(Debug, clap::Args)]
pub struct PutEventsArgs {
    /// Files to send (`-` for standard input).
    #[arg(required = true)]
    files: Vec<String>,
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
    /// Events per request (at most the server's max_events_per_request).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Print every rejected event (default: the first 20).
    #[arg(long)]
    all_rejections: bool,
    /// Output format: json (the counts and the rejections), table or text (the counts; the
    /// rejections on stderr).
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json)]
    output: crate::output::Output,
}

#[derive(Debug, Deserialize)]
struct PutEventsResponse {
    results: Vec<EventResult>,
}

#[derive(Debug, Deserialize)]
struct EventResult {
    index: usize,
    status: String,
    #[serde(rename = "eventID")]
    event_id: Option<String>,
    field: Option<String>,
    reason: Option<String>,
}

pub fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .build()
        .context("building the HTTP client")
}

/// Sends a signed JSON request to the server at `base`: the JSON answer, or the server's
/// error as the failure.
pub async fn call(request: reqwest::RequestBuilder, base: &str) -> anyhow::Result<Value> {
    let response = request
        .header("content-type", "application/json")
        .send_signed()
        .await
        .with_context(|| format!("connecting to {base}"))?;
    if !response.status().is_success() {
        bail!("{}", error_text(response).await);
    }
    Ok(serde_json::from_slice(&response.bytes().await?)?)
}

/// `cairn put-events`.
pub async fn put_events(args: PutEventsArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let client = http()?;
    let url = format!("{}/v1/events", args.endpoint.trim_end_matches('/'));
    let (mut accepted, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    let mut printed = 0usize;
    let mut rejections: Vec<Value> = Vec::new();
    let json = args.output == crate::output::Output::Json;
    for file in &args.files {
        let mut events = crate::input::Events::open(file)?;
        let shape = events.shape();
        let progress = events.len_hint().filter(|n| *n > 10 * args.batch).map(|n| {
            let bar = indicatif::ProgressBar::new(n as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(file.clone());
            bar
        });
        let content_type = match shape {
            crate::input::Shape::Json => "application/json",
            crate::input::Shape::Ndjson => "application/x-ndjson",
        };
        let mut offset = 0;
        loop {
            let chunk = events.next_chunk(args.batch)?;
            if chunk.is_empty() {
                break;
            }
            let body = encode_chunk(shape, &chunk);
            let response = loop {
                let response = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send_signed()
                    .await
                    .with_context(|| format!("sending events to {url}"))?;
                if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    // Nothing was acknowledged; retrying is safe (eventIDs make it idempotent).
                    eprintln!(
                        "server unavailable ({}), retrying in 1s",
                        error_text(response).await
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                break response;
            };
            let status = response.status();
            if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::BAD_REQUEST {
                bail!("{file}: request failed: {}", error_text(response).await);
            }
            let text = response.text().await.context("reading the response")?;
            let parsed: PutEventsResponse = match serde_json::from_str(&text) {
                Ok(parsed) => parsed,
                Err(_) => bail!("{file}: request failed: {status}: {text}"),
            };
            for result in parsed.results {
                match result.status.as_str() {
                    "accepted" => accepted += 1,
                    "duplicate" => duplicates += 1,
                    _ => {
                        rejected += 1;
                        if args.all_rejections || printed < 20 {
                            printed += 1;
                            // Events are numbered from 1 in their file, as `filter test`
                            // numbers them.
                            let number = offset + result.index + 1;
                            if json {
                                rejections.push(serde_json::json!({
                                    "File": file, "Event": number,
                                    "Field": result.field, "Reason": result.reason,
                                }));
                            } else {
                                let field =
                                    result.field.map(|f| format!("{f}: ")).unwrap_or_default();
                                eprintln!(
                                    "{file}#{number}: rejected: {field}{}",
                                    result.reason.unwrap_or_default()
                                );
                            }
                        }
                    }
                }
                let _ = result.event_id;
            }
            if let Some(bar) = &progress {
                bar.inc(chunk.len() as u64);
            }
            offset += chunk.len();
        }
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
    }
    if rejected > printed {
        eprintln!(
            "... {} more rejections (use --all-rejections)",
            rejected - printed
        );
    }
    let mut summary = serde_json::json!({
        "Accepted": accepted, "Duplicates": duplicates, "Rejected": rejected,
    });
    if json {
        summary["Rejections"] = Value::Array(rejections);
    }
    crate::output::print(&summary, args.output)?;
    Ok(if rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, clap::Args)]
pub struct LookupArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
    /// Region to search [default: the server's].
    #[arg(long)]
    region: Option<String>,
    /// One attribute, `Key=Value`: EventId, EventName, ReadOnly, Username, ResourceType,
    /// ResourceName, EventSource or AccessKeyId.
    #[arg(long)]
    lookup_attribute: Option<String>,
    /// Inclusive start: ISO-8601 (`2026-02-11`, `2026-02-11T10:15:00Z`, any offset) or epoch seconds.
    #[arg(long)]
    start_time: Option<String>,
    /// Inclusive end.
    #[arg(long)]
    end_time: Option<String>,
    /// Most events to print (pages of up to 50 are fetched until this many).
    #[arg(long, default_value_t = 50)]
    max_results: usize,
    /// Continue from a previous answer's NextToken.
    #[arg(long)]
    next_token: Option<String>,
    /// Search Insights events.
    #[arg(long)]
    insights: bool,
    /// Output format: json (LookupEvents' answer, times in ISO-8601), table or text (time,
    /// name, user, source and id of each event).
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json)]
    output: crate::output::Output,
}

/// `cairn lookup-events`.
pub async fn lookup_events(args: LookupArgs) -> anyhow::Result<()> {
    let client = http()?;
    let url = format!("{}/v1/event-history", args.endpoint.trim_end_matches('/'));
    // Times as people type them, sent as ISO-8601 UTC.
    let iso = |t: &Option<String>| -> anyhow::Result<Option<String>> {
        t.as_deref()
            .map(|t| crate::validate::parse_time(t).map(cairn_model::time::format_utc_seconds))
            .transpose()
    };
    let (start_time, end_time) = (iso(&args.start_time)?, iso(&args.end_time)?);
    let mut events: Vec<Value> = Vec::new();
    let mut token = args.next_token.clone();
    loop {
        let page_size = (args.max_results - events.len()).clamp(1, 50);
        let mut params: Vec<(&str, String)> = vec![("max-results", page_size.to_string())];
        let optional = [
            ("region", &args.region),
            ("lookup-attribute", &args.lookup_attribute),
            ("start-time", &start_time),
            ("end-time", &end_time),
            ("next-token", &token),
        ];
        params.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k, v))),
        );
        if args.insights {
            params.push(("event-category", "insight".to_owned()));
        }
        let query: String = form_encode(&params);
        let response = client
            .get(format!("{url}?{query}"))
            .send_signed()
            .await
            .with_context(|| format!("querying {url}"))?;
        if !response.status().is_success() {
            bail!("lookup failed: {}", error_text(response).await);
        }
        let page: Value = response.json_value().await?;
        events.extend(page["Events"].as_array().cloned().unwrap_or_default());
        token = page["NextToken"].as_str().map(str::to_owned);
        if token.is_none() || events.len() >= args.max_results {
            break;
        }
    }
    let mut out = serde_json::json!({ "Events": events });
    if let Some(token) = token {
        out["NextToken"] = Value::String(token);
    }
    if args.output == crate::output::Output::Json {
        return crate::output::print(&out, args.output);
    }
    // Table and text: the columns CloudTrail's console shows first, not each record's JSON.
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({
                "EventTime": e["EventTime"], "EventName": e["EventName"],
                "Username": e["Username"], "EventSource": e["EventSource"],
                "EventId": e["EventId"],
            })
        })
        .collect();
    let mut brief = serde_json::json!({ "Events": rows });
    if let Some(token) = out.get("NextToken") {
        brief["NextToken"] = token.clone();
    }
    crate::output::print(&brief, args.output)?;
    Ok(())
}

fn form_encode(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

trait JsonValue {
    async fn json_value(self) -> anyhow::Result<Value>;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> anyhow::Result<Value> {
        let text = self.text().await.context("reading the response")?;
        serde_json::from_str(&text).context("the server's answer is not JSON")
    }
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint())]
    endpoint: String,
    /// Output format: json, table (the consumers, then the rest) or text.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json)]
    output: crate::output::Output,
}

/// `cairn status`: readiness and its reason, the WAL, each consumer's position, lag and
/// failure (which one holds the WAL), free space. Exit 1 when the server is not ready.
pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let base = args.endpoint.trim_end_matches('/').to_owned();
    let status = call(http()?.get(format!("{base}/v1/status")), &base).await?;
    crate::output::print(&status, args.output)?;
    Ok(if status["Ready"] == Value::Bool(true) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
