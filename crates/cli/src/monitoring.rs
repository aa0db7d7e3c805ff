//! `cairn logs ...`, `cairn metrics ...`, `cairn alarms ...`, `cairn topics ...`: log groups,
//! metric filters, statistics, alarms and topics through the API.

use crate::client::{call, http, percent_encode};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Endpoint {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint(), global = true)]
    endpoint: String,
    /// Output format: json, table or text.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json, global = true)]
    output: crate::output::Output,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LogsCommand {
    /// Create a log group fed by a trail (or change its trail and retention).
    CreateLogGroup {
        #[arg(long)]
        log_group: String,
        #[arg(long)]
        trail: String,
        /// Days (CloudWatch's values, 1 to 3653).
        #[arg(long, default_value_t = 90)]
        retention_in_days: u32,
    },
    /// List log groups.
    DescribeLogGroups,
    /// FilterLogEvents: events of a group matching a filter pattern, oldest first.
    FilterLogEvents {
        #[arg(long)]
        log_group: String,
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        filter_pattern: String,
        /// `2026-12-01T10:00:00Z` or epoch seconds.
        #[arg(long)]
        start_time: Option<String>,
        #[arg(long)]
        end_time: Option<String>,
        /// Most events to print (pages are followed until this many).
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// PutMetricFilter (one transformation).
    PutMetricFilter {
        #[arg(long)]
        log_group: String,
        #[arg(long)]
        filter_name: String,
        #[arg(long, allow_hyphen_values = true)]
        filter_pattern: String,
        #[arg(long)]
        metric_name: String,
        #[arg(long)]
        metric_namespace: String,
        #[arg(long, default_value = "1")]
        metric_value: String,
        #[arg(long)]
        default_value: Option<f64>,
    },
}

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum MetricsCommand {
    /// GetMetricStatistics.
    GetStatistics {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        metric_name: String,
        #[arg(long)]
        start_time: String,
        #[arg(long)]
        end_time: String,
        /// Seconds (a multiple of 60).
        #[arg(long, default_value_t = 60)]
        period: u64,
        /// Comma-separated: Sum, Average, Minimum, Maximum, SampleCount.
        #[arg(long, default_value = "Sum")]
        statistics: String,
        /// `Name=Value`, repeatable.
        #[arg(long)]
        dimension: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct AlarmsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: AlarmsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AlarmsCommand {
    /// The CIS AWS Foundations pack on a log group: 15 metric filters and their alarms
    /// (Sum over 300 s >= 1) notifying a topic.
    InstallCis {
        #[arg(long)]
        log_group: String,
        #[arg(long)]
        topic: String,
    },
    /// DescribeAlarms: states, reasons and history.
    List,
}

#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// Create (or replace) a topic with subscriptions: `--http URL`, `--file PATH`.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        http: Vec<String>,
        #[arg(long)]
        file: Vec<String>,
    },
    /// Topics with each subscription's delivery status.
    List,
}

fn time_ms(text: &str) -> anyhow::Result<i64> {
    crate::validate::parse_time(text)
}

fn print(value: &Value, output: crate::output::Output) -> anyhow::Result<()> {
    crate::output::print(value, output)
}

/// `cairn logs ...`.
pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let base = args.endpoint.endpoint.trim_end_matches('/').to_owned();
    let output = args.endpoint.output;
    let client = http()?;
    let group_url = |g: &str| format!("{base}/v1/log-groups/{}", percent_encode(g));
    match args.command {
        LogsCommand::CreateLogGroup {
            log_group,
            trail,
            retention_in_days,
        } => print(
            &call(
                client.put(group_url(&log_group)).body(
                    json!({"trailName": trail, "retentionInDays": retention_in_days}).to_string(),
                ),
                &base,
            )
            .await?,
            output,
        ),
        LogsCommand::DescribeLogGroups => print(
            &call(client.get(format!("{base}/v1/log-groups")), &base).await?,
            output,
        ),
        LogsCommand::FilterLogEvents {
            log_group,
            filter_pattern,
            start_time,
            end_time,
            limit,
        } => {
            let mut token: Option<String> = None;
            let mut printed = 0;
            loop {
                let mut url = format!(
                    "{}/events?filterPattern={}&limit={}",
                    group_url(&log_group),
                    percent_encode(&filter_pattern),
                    (limit - printed).clamp(1, 10_000)
                );
                if let Some(t) = &start_time {
                    url.push_str(&format!("&startTime={}", time_ms(t)?));
                }
                if let Some(t) = &end_time {
                    url.push_str(&format!("&endTime={}", time_ms(t)?));
                }
                if let Some(t) = &token {
                    url.push_str(&format!("&nextToken={}", percent_encode(t)));
                }
                let page = call(client.get(url), &base).await?;
                for event in page["events"].as_array().into_iter().flatten() {
                    println!("{}", event["message"].as_str().unwrap_or(""));
                    printed += 1;
                }
                match page["nextToken"].as_str() {
                    Some(t) if printed < limit => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            eprintln!("{printed} events");
            Ok(())
        }
        LogsCommand::PutMetricFilter {
            log_group,
            filter_name,
            filter_pattern,
            metric_name,
            metric_namespace,
            metric_value,
            default_value,
        } => {
            let body = json!({"filterPattern": filter_pattern, "metricTransformations": [{
                "metricName": metric_name, "metricNamespace": metric_namespace,
                "metricValue": metric_value, "defaultValue": default_value }]});
            print(
                &call(
                    client
                        .put(format!(
                            "{}/metric-filters/{}",
                            group_url(&log_group),
                            percent_encode(&filter_name)
                        ))
                        .body(body.to_string()),
                    &base,
                )
                .await?,
                output,
            )
        }
    }
}

/// `cairn metrics ...`.
pub async fn metrics(args: MetricsArgs) -> anyhow::Result<()> {
    let base = args.endpoint.endpoint.trim_end_matches('/').to_owned();
    let output = args.endpoint.output;
    let MetricsCommand::GetStatistics {
        namespace,
        metric_name,
        start_time,
        end_time,
        period,
        statistics,
        dimension,
    } = args.command;
    let mut url = format!(
        "{base}/v1/metrics/statistics?namespace={}&metricName={}&startTime={}&endTime={}&period={period}&statistics={}",
        percent_encode(&namespace),
        percent_encode(&metric_name),
        time_ms(&start_time)?,
        time_ms(&end_time)?,
        percent_encode(&statistics)
    );
    for d in &dimension {
        url.push_str(&format!("&dimension={}", percent_encode(d)));
    }
    print(&call(http()?.get(url), &base).await?, output)
}

/// `cairn alarms ...`.
pub async fn alarms(args: AlarmsArgs) -> anyhow::Result<()> {
    let base = args.endpoint.endpoint.trim_end_matches('/').to_owned();
    let output = args.endpoint.output;
    let client = http()?;
    match args.command {
        AlarmsCommand::InstallCis { log_group, topic } => print(
            &call(
                client
                    .post(format!("{base}/v1/alarms/install-cis"))
                    .body(json!({"logGroupName": log_group, "topicName": topic}).to_string()),
                &base,
            )
            .await?,
            output,
        ),
        AlarmsCommand::List => print(
            &call(client.get(format!("{base}/v1/alarms")), &base).await?,
            output,
        ),
    }
}

/// `cairn topics ...`.
pub async fn topics(args: TopicsArgs) -> anyhow::Result<()> {
    let base = args.endpoint.endpoint.trim_end_matches('/').to_owned();
    let output = args.endpoint.output;
    let client = http()?;
    match args.command {
        TopicsCommand::Create { name, http, file } => {
            let subscriptions: Vec<Value> = http
                .iter()
                .map(|u| {
                    // SNS names the protocol after the URL's scheme.
                    let protocol = if u.starts_with("https://") {
                        "https"
                    } else {
                        "http"
                    };
                    json!({"protocol": protocol, "endpoint": u})
                })
                .chain(
                    file.iter()
                        .map(|f| json!({"protocol": "file", "endpoint": f})),
                )
                .collect();
            print(
                &call(
                    client
                        .put(format!("{base}/v1/topics/{}", percent_encode(&name)))
                        .body(json!({"subscriptions": subscriptions}).to_string()),
                    &base,
                )
                .await?,
                output,
            )
        }
        TopicsCommand::List => print(
            &call(client.get(format!("{base}/v1/topics")), &base).await?,
            output,
        ),
    }
}
