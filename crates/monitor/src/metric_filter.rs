//! A metric filter: a pattern and one metric transformation (spec §9). For each event it yields
//! at most one datapoint: the value (a literal, or a number the event holds) with its
//! dimensions when the pattern matches, the default value when it does not.

use cairn_filter::{json, Pattern, Step};
use std::collections::BTreeMap;

/// CloudWatch's standard units.
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Why a metric filter is refused (`InvalidParameterException` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// A number literal.
    Literal(f64),
    /// A JSON selector (`$.latency`).
    Selector(Vec<Step>),
    /// A space-delimited field (`$status`, or a position `$3`).
    Field(String),
}

/// The transformation as given (PutMetricFilter's `metricTransformations[0]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TransformationSpec {
    /// Metric name.
    pub metric_name: String,
    /// Namespace.
    pub metric_namespace: String,
    /// `metricValue`: a number or a reference.
    pub metric_value: String,
    /// `defaultValue`.
    pub default_value: Option<f64>,
    /// Dimension name → reference.
    pub dimensions: BTreeMap<String, String>,
    /// Unit (default `None`).
    pub unit: Option<String>,
}

/// A validated metric filter.
#[derive(Debug, Clone)]
pub struct MetricFilter {
    /// Filter name.
    pub name: String,
    /// Pattern text.
    pub pattern_text: String,
    /// Parsed pattern.
    pub pattern: Pattern,
    /// Metric name.
    pub metric_name: String,
    /// Namespace.
    pub namespace: String,
    /// Value.
    pub value: Reference,
    /// Default value for events that do not match.
    pub default_value: Option<f64>,
    /// Dimensions.
    pub dimensions: Vec<(String, Reference)>,
    /// Unit.
    pub unit: String,
}

/// One datapoint of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    /// Value.
    pub value: f64,
    /// Dimension name → value text (numbers as written).
    pub dimensions: BTreeMap<String, String>,
}

fn check_name(what: &str, text: &str, max: usize, forbidden: &str) -> Result<(), FilterError> {
    if text.is_empty() || text.chars().count() > max || text.chars().any(|c| forbidden.contains(c))
    {
        return Err(FilterError(format!(
            "{what} must be 1-{max} characters without any of {forbidden:?}, got {text:?}"
        )));
    }
    Ok(())
}

fn reference(text: &str, pattern: &Pattern, what: &str) -> Result<Reference, FilterError> {
    if let Ok(n) = text.trim().parse::<f64>() {
        if n.is_finite() {
            return Ok(Reference::Literal(n));
        }
    }
    match pattern {
        Pattern::Json(_) if text.starts_with("$.") || text.starts_with("$[") => {
            cairn_filter::parse_selector(text)
                .map(Reference::Selector)
                .map_err(|e| FilterError(format!("{what} {text:?}: {e}")))
        }
        Pattern::Delimited(_) if text.len() > 1 && text.starts_with('$') => {
            let name = &text[1..];
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(Reference::Field(text.to_owned()))
            } else {
                Err(FilterError(format!("{what} {text:?} is not a field reference")))
            }
        }
        _ => Err(FilterError(format!(
            "{what} {text:?} must be a number, or a reference ($.field for JSON patterns, $name for space-delimited ones)"
        ))),
    }
}

impl MetricFilter {
    /// Validates a filter as PutMetricFilter does.
    pub fn new(
        name: &str,
        pattern_text: &str,
        spec: &TransformationSpec,
    ) -> Result<Self, FilterError> {
        check_name("filterName", name, 512, ":*")?;
        check_name("metricName", &spec.metric_name, 255, ":*$")?;
        check_name("metricNamespace", &spec.metric_namespace, 255, ":*$")?;
        let pattern = cairn_filter::parse(pattern_text).map_err(|e| FilterError(e.to_string()))?;
        if spec.metric_value.is_empty() || spec.metric_value.chars().count() > 100 {
            return Err(FilterError("metricValue must be 1-100 characters".into()));
        }
        let value = reference(&spec.metric_value, &pattern, "metricValue")?;
        if spec.dimensions.len() > 3 {
            return Err(FilterError("at most 3 dimensions".into()));
        }
        if !spec.dimensions.is_empty() {
            if spec.default_value.is_some() {
                return Err(FilterError(
                    "defaultValue cannot be combined with dimensions".into(),
                ));
            }
            if !matches!(pattern, Pattern::Json(_) | Pattern::Delimited(_)) {
                return Err(FilterError(
                    "The specified filter pattern does not support dimensions".into(),
                ));
            }
        }
        let mut dimensions = Vec::new();
        for (key, text) in &spec.dimensions {
            check_name("dimension name", key, 255, "")?;
            if text.chars().count() > 255 {
                return Err(FilterError(
                    "a dimension value is at most 255 characters".into(),
                ));
            }
            match reference(text, &pattern, "dimension")? {
                Reference::Literal(_) => {
                    return Err(FilterError(format!(
                        "dimension {key} must reference a field of the event"
                    )))
                }
                r => dimensions.push((key.clone(), r)),
            }
        }
        let unit = spec.unit.clone().unwrap_or_else(|| "None".to_owned());
        if !UNITS.contains(&unit.as_str()) {
            return Err(FilterError(format!(
                "unit {unit:?} is not a CloudWatch unit"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            pattern_text: pattern_text.to_owned(),
            pattern,
            metric_name: spec.metric_name.clone(),
            namespace: spec.metric_namespace.clone(),
            value,
            default_value: spec.default_value,
            dimensions,
            unit,
        })
    }

    /// The datapoint `message` contributes, if any.
    pub fn datapoint(&self, message: &str) -> Option<Datapoint> {
        let Some(extracted) = self.pattern.evaluate(message) else {
            return self.default_value.map(|value| Datapoint {
                value,
                dimensions: BTreeMap::new(),
            });
        };
        let root = match self.pattern {
            Pattern::Json(_) => json::parse(message),
            _ => None,
        };
        let text_of = |r: &Reference| -> Option<String> {
            match r {
                Reference::Literal(n) => Some(n.to_string()),
                Reference::Selector(steps) => match cairn_filter::lookup(root.as_ref()?, steps)? {
                    json::Value::Number(n) => Some(n.clone()),
                    json::Value::String(s) => Some(s.clone()),
                    _ => None,
                },
                Reference::Field(name) => extracted.get(name).cloned(),
            }
        };
        let value = match &self.value {
            Reference::Literal(n) => *n,
            r => text_of(r)?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())?,
        };
        let mut dimensions = BTreeMap::new();
        for (key, r) in &self.dimensions {
            dimensions.insert(key.clone(), text_of(r)?);
        }
        Some(Datapoint { value, dimensions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: &str) -> TransformationSpec {
        TransformationSpec {
            metric_name: "M".into(),
            metric_namespace: "LogMetrics".into(),
            metric_value: value.into(),
            ..Default::default()
        }
    }

    #[test]
    fn literal_reference_default_and_dimensions() {
        let root = MetricFilter::new(
            "root",
            cairn_filter::cis::CONTROLS[0].pattern,
            &TransformationSpec {
                default_value: Some(0.0),
                ..spec("1")
            },
        )
        .expect("filter");
        let event = r#"{"userIdentity":{"type":"Root"},"eventType":"AwsApiCall"}"#;
        assert_eq!(root.datapoint(event).map(|d| d.value), Some(1.0));
        assert_eq!(
            root.datapoint(r#"{"userIdentity":{"type":"IAMUser"}}"#)
                .map(|d| d.value),
            Some(0.0),
            "default for a non-matching event"
        );
        let latency = MetricFilter::new(
            "latency",
            "{ $.latency > 0 }",
            &TransformationSpec {
                dimensions: [("op".to_owned(), "$.eventName".to_owned())].into(),
                unit: Some("Milliseconds".into()),
                ..spec("$.latency")
            },
        )
        .expect("filter");
        let point = latency
            .datapoint(r#"{"latency":12.5,"eventName":"GetObject"}"#)
            .expect("datapoint");
        assert_eq!(point.value, 12.5);
        assert_eq!(point.dimensions["op"], "GetObject");
        assert_eq!(
            latency.datapoint(r#"{"latency":3}"#),
            None,
            "a missing dimension: nothing"
        );
        assert_eq!(
            latency.datapoint(r#"{"latency":-1,"eventName":"x"}"#),
            None,
            "no match, no default"
        );
        let web = MetricFilter::new(
            "bytes",
            "[ip, user, ..., status=4*, size]",
            &TransformationSpec {
                dimensions: [("status".to_owned(), "$status".to_owned())].into(),
                ..spec("$size")
            },
        )
        .expect("filter");
        let point = web
            .datapoint("1.2.3.4 frank [x] \"GET /\" 404 1534")
            .expect("datapoint");
        assert_eq!(
            (point.value, point.dimensions["status"].as_str()),
            (1534.0, "404")
        );
    }

    #[test]
    fn put_metric_filter_validation() {
        let bad = [
            ("a:b", "ERROR", spec("1"), "filterName"),
            ("f", "ERR*", spec("1"), "invalid filter pattern"),
            ("f", "ERROR", spec("$.x"), "must be a number"),
            (
                "f",
                "{ $.a = 1 }",
                TransformationSpec {
                    unit: Some("Furlongs".into()),
                    ..spec("1")
                },
                "unit",
            ),
            (
                "f",
                "ERROR",
                TransformationSpec {
                    dimensions: [("d".to_owned(), "$.x".to_owned())].into(),
                    ..spec("1")
                },
                "does not support dimensions",
            ),
            (
                "f",
                "{ $.a = 1 }",
                TransformationSpec {
                    dimensions: [("d".to_owned(), "$.x".to_owned())].into(),
                    default_value: Some(0.0),
                    ..spec("1")
                },
                "defaultValue",
            ),
            (
                "f",
                "{ $.a = 1 }",
                TransformationSpec {
                    metric_name: "a$b".into(),
                    ..spec("1")
                },
                "metricName",
            ),
        ];
        for (name, pattern, spec, reason) in bad {
            let error = MetricFilter::new(name, pattern, &spec).expect_err(reason);
            assert!(error.0.contains(reason), "{error}");
        }
    }
}
