//! Alarm notifications: every state change goes to the alarm's topics; each subscription gets
//! an SNS-shaped, signed message (`cairn-monitor::notification`) — HTTP endpoints by POST, retried
//! with backoff (1 s doubling to 60 s, 8 attempts), files by appending one JSON line. Delivery
//! outcomes are kept per subscription (shown by `GET /v1/topics`) and counted in metrics.

use crate::metrics::Metrics;
use cairn_digest::SigningKey;
use cairn_logs::{Logs, Notify};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One subscription's delivery record.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// Notifications delivered.
    pub delivered: u64,
    /// Failed attempts (each retried until the last).
    pub failed_attempts: u64,
    /// Notifications given up on.
    pub abandoned: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Epoch ms of the last delivery.
    pub last_delivery: Option<i64>,
}

/// The signing key of notifications, created at first use (`<data_dir>/notifications-key.pem`,
/// mode 0600).
pub struct NotificationKey {
    path: PathBuf,
    key: OnceLock<SigningKey>,
}

impl NotificationKey {
    /// The key at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            key: OnceLock::new(),
        }
    }

    /// The key (read or generated).
    pub fn get(&self) -> Result<&SigningKey, String> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        // Generated once, when there is none; a key that cannot be read is an error, never a
        // reason to replace it (receivers verify with the published one).
        let key = match std::fs::read_to_string(&self.path) {
            Ok(pem) => {
                SigningKey::from_pem(&pem).map_err(|e| format!("{}: {e}", self.path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate().map_err(|e| e.to_string())?;
                let pem = key.to_pem().map_err(|e| e.to_string())?;
                cairn_durable::file::write_private(&self.path, pem.as_bytes())
                    .map_err(|e| format!("{}: {e}", self.path.display()))?;
                key
            }
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        Ok(self.key.get_or_init(|| key))
    }

    /// The public key, PEM (PKCS#1).
    pub fn public_pem(&self) -> Result<String, String> {
        use base64::Engine;
        let der = self.get()?.public_key().to_der();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        Ok(format!(
            "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
            lines.join("\n")
        ))
    }
}

/// Sends notifications.
#[derive(Clone)]
pub struct Notifier {
    tx: tokio::sync::mpsc::UnboundedSender<Notify>,
    /// Per `topic/endpoint`.
    pub status: Arc<Mutex<BTreeMap<String, DeliveryStatus>>>,
}

impl Notifier {
    /// Queues a state change.
    pub fn send(&self, notify: Notify) {
        let _ = self.tx.send(notify);
    }
}

/// Context of the notifier thread.
pub struct NotifierConfig {
    /// Topics and their subscriptions.
    pub logs: Arc<Logs>,
    /// Signing key.
    pub key: Arc<NotificationKey>,
    /// Region of the deployment.
    pub region: String,
    /// Account.
    pub account: String,
    /// Where receivers get the public key.
    pub signing_cert_url: String,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The clock (delivery times in the topic status).
    pub clock: Arc<dyn cairn_model::Clock>,
}

/// Starts the notifier thread; it ends (and releases the log store) once every [`Notifier`]
/// is dropped.
pub fn spawn(config: NotifierConfig) -> std::io::Result<(Notifier, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Notify>();
    let status: Arc<Mutex<BTreeMap<String, DeliveryStatus>>> = Arc::default();
    let shared = status.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("cairn-notifier".into())
        .spawn(move || {
            let config = Arc::new(config);
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client");
            runtime.block_on(async move {
                while let Some(notify) = rx.recv().await {
                    for action in &notify.alarm.actions {
                        let Some(topic) =
                            config.logs.topics().into_iter().find(|t| t.name == *action)
                        else {
                            continue;
                        };
                        let body = match message(&config, &topic.name, &notify) {
                            Ok(body) => body,
                            Err(e) => {
                                tracing::error!(error = %e, "signing a notification failed");
                                continue;
                            }
                        };
                        for subscription in topic.subscriptions {
                            let (client, status, config, body, topic) = (
                                client.clone(),
                                shared.clone(),
                                config.clone(),
                                body.clone(),
                                topic.name.clone(),
                            );
                            tokio::spawn(async move {
                                deliver(&client, &status, &config, &topic, &subscription, &body)
                                    .await;
                            });
                        }
                    }
                }
            });
        })?;
    Ok((Notifier { tx, status }, thread))
}

fn message(config: &NotifierConfig, topic: &str, notify: &Notify) -> Result<String, String> {
    let alarm = &notify.alarm;
    let change = &notify.change;
    let time = cairn_model::time::format_utc_seconds(change.time);
    let timestamp = format!("{}.{:03}Z", &time[..19], change.time.rem_euclid(1000));
    let inner = json!({
        "AlarmName": alarm.name,
        "NewStateValue": change.new.as_str(),
        "OldStateValue": change.old.as_str(),
        "NewStateReason": change.reason,
        "StateChangeTime": timestamp,
        "Region": config.region,
        "AWSAccountId": config.account,
        "Trigger": {
            "MetricName": alarm.metric,
            "Namespace": alarm.namespace,
            "Statistic": format!("{:?}", alarm.spec.statistic).to_uppercase(),
            "Period": alarm.spec.period_seconds,
            "EvaluationPeriods": alarm.spec.evaluation_periods,
            "ComparisonOperator": format!("{:?}", alarm.spec.comparison),
            "Threshold": alarm.spec.threshold,
        },
    });
    let notification = cairn_monitor::notification::Notification {
        message_id: uuid::Uuid::new_v4().to_string(),
        topic_arn: format!("arn:aws:sns:{}:{}:{topic}", config.region, config.account),
        subject: format!(
            "{}: \"{}\" in {}",
            change.new.as_str(),
            alarm.name,
            config.region
        )
        .chars()
        .take(100)
        .collect(),
        message: inner.to_string(),
        timestamp,
    };
    Ok(notification
        .to_json(config.key.get()?, &config.signing_cert_url)
        .to_string())
}

async fn deliver(
    client: &reqwest::Client,
    status: &Mutex<BTreeMap<String, DeliveryStatus>>,
    config: &NotifierConfig,
    topic: &str,
    subscription: &cairn_logs::Subscription,
    body: &str,
) {
    let key = format!("{topic}/{}", subscription.endpoint);
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=8 {
        let result: Result<(), String> = match subscription.protocol.as_str() {
            "file" => {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&subscription.endpoint)
                    .and_then(|mut f| {
                        f.write_all(format!("{body}\n").as_bytes())?;
                        f.sync_data()
                    })
                    .map_err(|e| e.to_string())
            }
            _ => client
                .post(&subscription.endpoint)
                .header("content-type", "text/plain; charset=UTF-8")
                .header("x-amz-sns-message-type", "Notification")
                .header(
                    "x-amz-sns-topic-arn",
                    format!("arn:aws:sns:{}:{}:{topic}", config.region, config.account),
                )
                .body(body.to_owned())
                .send()
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    if r.status().is_success() {
                        Ok(())
                    } else {
                        Err(format!("the endpoint answered {}", r.status()))
                    }
                }),
        };
        let finished = {
            let mut map = status.lock().expect("status lock poisoned");
            let entry = map.entry(key.clone()).or_default();
            match result {
                Ok(()) => {
                    entry.delivered += 1;
                    entry.last_delivery = Some(config.clock.now_millis());
                    config.metrics.notification(true);
                    true
                }
                Err(e) => {
                    tracing::warn!(topic, endpoint = %subscription.endpoint, attempt, error = %e, "notification delivery failed");
                    entry.failed_attempts += 1;
                    entry.last_error = Some(e);
                    config.metrics.notification(false);
                    if attempt == 8 {
                        entry.abandoned += 1;
                    }
                    attempt == 8
                }
            }
        };
        if finished {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}
