//! `cairn bench alert`: alert latency at default settings — from the acknowledgement of an
//! ingested event to the webhook receiving the alarm's notification — beside the round trip of
//! a bare POST to the same webhook in the same run.

use anyhow::{bail, Context};
use cairn_client::sign::SendSigned;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct AlertBenchArgs {
    /// Alerts to measure (one alarm each).
    #[arg(long, default_value_t = 50)]
    alerts: usize,
}

type Received = Arc<Mutex<Vec<(String, Instant)>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub async fn alert(args: AlertBenchArgs) -> anyhow::Result<()> {
    if args.alerts == 0 || args.alerts > 90 {
        bail!("--alerts must be 1 to 90 (metric filters per log group)");
    }
    let scratch = tempfile::tempdir()?;
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let store = store.clone();
            async move {
                store.lock().expect("lock").push((body, Instant::now()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let config = cairn_server::config::RawConfig {
        data_dir: Some(scratch.path().join("data")),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    }
    .resolve()?;
    let running = cairn_server::start(config, Arc::new(cairn_model::SystemClock)).await?;
    let base = format!("http://{}", running.local_addr);
    let credentials =
        cairn_client::sign::from_file(&scratch.path().join("data/admin-credentials"), "default")?
            .context("no admin-credentials")?;
    let client = reqwest::Client::new();
    let send = |request: reqwest::RequestBuilder| {
        let credentials = credentials.clone();
        async move {
            let response = request
                .header("content-type", "application/json")
                .send_signed_with(&credentials)
                .await?;
            if !response.status().is_success() {
                bail!("{}", cairn_client::http::error_text(response).await);
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    send(client.post(format!("{base}/v1/trails")).body(
        json!({"Name": "bench", "LocalDirectory": scratch.path().join("bucket"), "IsMultiRegionTrail": true}).to_string(),
    ))
    .await?;
    send(client.post(format!("{base}/v1/trails/bench/start-logging"))).await?;
    send(
        client
            .put(format!("{base}/v1/log-groups/bench"))
            .body(json!({"trailName": "bench"}).to_string()),
    )
    .await?;
    send(
        client
            .put(format!("{base}/v1/topics/alerts"))
            .body(json!({"subscriptions": [{"protocol": "http", "endpoint": hook}]}).to_string()),
    )
    .await?;
    for i in 0..args.alerts {
        send(client.put(format!("{base}/v1/log-groups/bench/metric-filters/f{i}")).body(
            json!({"filterPattern": format!("{{ $.eventName = \"Bench{i}\" }}"),
                   "metricTransformations": [{"metricName": format!("Bench{i}"), "metricNamespace": "Bench", "metricValue": "1"}]})
            .to_string(),
        ))
        .await?;
        send(client.put(format!("{base}/v1/alarms/a{i}")).body(
            json!({"namespace": "Bench", "metricName": format!("Bench{i}"), "statistic": "Sum", "period": 300,
                   "evaluationPeriods": 1, "threshold": 1, "comparisonOperator": "GreaterThanOrEqualToThreshold",
                   "treatMissingData": "notBreaching", "alarmActions": ["alerts"]})
            .to_string(),
        ))
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::new();
    for i in 0..args.alerts {
        let time = cairn_model::time::format_utc_seconds(cairn_model::Clock::now_millis(
            &cairn_model::SystemClock,
        ));
        let event = format!(
            r#"[{{"eventVersion":"1.11","userIdentity":{{"type":"IAMUser","userName":"bench"}},"eventTime":"{time}","eventSource":"bench.example","eventName":"Bench{i}","awsRegion":"us-east-1"}}]"#
        );
        send(client.post(format!("{base}/v1/events")).body(event)).await?;
        let acked = Instant::now();
        let needle = format!("Bench{i}\\\"");
        let started = Instant::now();
        let arrived = loop {
            let found = received
                .lock()
                .expect("lock")
                .iter()
                .find(|(body, _)| body.contains(&needle))
                .map(|(_, at)| *at);
            if let Some(at) = found {
                break at;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("alert {i} did not arrive within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        latencies.push(arrived.saturating_duration_since(acked));
    }
    // Baseline: a bare POST of the same size to the same webhook.
    let mut baseline = Vec::new();
    let body = received.lock().expect("lock")[0].0.clone();
    for _ in 0..args.alerts {
        let started = Instant::now();
        client.post(&hook).body(body.clone()).send().await?;
        baseline.push(started.elapsed());
    }
    running.shutdown().await;
    latencies.sort();
    baseline.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "cairn bench alert: {} alerts, default settings, webhook on 127.0.0.1",
        args.alerts
    );
    println!(
        "  ingest ack -> webhook:   p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().expect("samples"))
    );
    println!(
        "  bare POST to the webhook: p50 {:>8.1} ms  p99 {:>8.1} ms",
        ms(percentile(&baseline, 0.5)),
        ms(percentile(&baseline, 0.99))
    );
    Ok(())
}
