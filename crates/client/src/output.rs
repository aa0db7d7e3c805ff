//! `--output json|table|text`: the AWS CLI's convention, for every command that prints an
//! answer.
//!
//! * `json`: the answer, pretty-printed, times in ISO-8601 UTC.
//! * `table`: the answer's rows (the items of its one list of objects, else the answer itself)
//!   as aligned columns under a header, in the members' alphabetical order (as the AWS CLI's
//!   text output orders them); nested values as compact JSON.
//! * `text`: the same rows, tab-separated, no header (for `cut` and `awk`); the answer's other
//!   scalar members (a `NextToken`, say) first, one `Name<TAB>value` line each.
//!
//! Times: members named `…Time`, `…Date` or `…Timestamp` that the API gives as epoch seconds
//! or milliseconds are printed as ISO-8601 UTC (`2026-12-07T19:50:00Z`), as the AWS CLI prints
//! timestamps.

use serde_json::Value;
use std::io::Write;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Pretty JSON.
    #[default]
    Json,
    /// Aligned columns.
    Table,
    /// Tab-separated values.
    Text,
}

/// Prints an API answer in `output`'s format.
pub fn print(value: &Value, output: Output) -> anyhow::Result<()> {
    let mut value = value.clone();
    iso_times(&mut value);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?,
        Output::Table => write_table(&mut out, &value)?,
        Output::Text => write_text(&mut out, &value)?,
    }
    Ok(())
}

fn is_time_name(name: &str) -> bool {
    name.ends_with("Time") || name.ends_with("Date") || name.ends_with("Timestamp")
}

/// Epoch seconds or milliseconds under time-named members, as ISO-8601 UTC.
pub fn iso_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if is_time_name(name) {
                    if let Some(n) = member.as_f64() {
                        // Milliseconds from 1973 on, seconds before 5138: unambiguous here.
                        let millis = if n.abs() >= 1e11 { n } else { n * 1000.0 };
                        *member = Value::String(cairn_model::time::format_utc_seconds(
                            millis.round() as i64,
                        ));
                        continue;
                    }
                }
                iso_times(member);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(iso_times),
        _ => {}
    }
}

/// The rows of an answer and its other scalar members.
fn rows(value: &Value) -> (Vec<&Value>, Vec<(&str, &Value)>) {
    match value {
        Value::Array(items) => (items.iter().collect(), Vec::new()),
        Value::Object(map) => {
            let lists: Vec<&str> = map
                .iter()
                .filter(|(_, v)| v.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
                .map(|(k, _)| k.as_str())
                .collect();
            let others_scalar = map
                .iter()
                .filter(|(k, _)| !lists.contains(&k.as_str()))
                .all(|(_, v)| !v.is_object() && !v.is_array());
            match lists.as_slice() {
                [list] if others_scalar => (
                    map[*list]
                        .as_array()
                        .map_or_else(Vec::new, |a| a.iter().collect()),
                    map.iter()
                        .filter(|(k, _)| k.as_str() != *list)
                        .map(|(k, v)| (k.as_str(), v))
                        .collect(),
                ),
                _ => (vec![value], Vec::new()),
            }
        }
        other => (vec![other], Vec::new()),
    }
}

fn columns(rows: &[&Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for row in rows {
        if let Some(map) = row.as_object() {
            for key in map.keys() {
                if !out.contains(key) {
                    out.push(key.clone());
                }
            }
        }
    }
    out
}

/// A value in a cell: strings as they are, other scalars as JSON, nested values compact.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn row_cells(row: &Value, columns: &[String]) -> Vec<String> {
    match row.as_object() {
        Some(map) => columns.iter().map(|c| cell(map.get(c))).collect(),
        None => vec![cell(Some(row))],
    }
}

fn write_table(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    const WIDEST: usize = 80;
    let (rows, others) = rows(value);
    let columns = columns(&rows);
    let header: Vec<String> = if columns.is_empty() {
        vec!["Value".to_owned()]
    } else {
        columns.clone()
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            row_cells(r, &columns)
                .into_iter()
                .map(|c| {
                    // One line per row: newlines shown as such, very long cells cut.
                    let c = c.replace('\n', "\\n");
                    if c.chars().count() > WIDEST {
                        format!("{}…", c.chars().take(WIDEST - 1).collect::<String>())
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&header[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    )?;
    for row in &body {
        writeln!(out, "{}", line(row))?;
    }
    for (name, value) in others {
        writeln!(out, "{name}: {}", cell(Some(value)))?;
    }
    Ok(())
}

fn write_text(out: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let (rows, others) = rows(value);
    for (name, value) in others {
        writeln!(
            out,
            "{name}\t{}",
            cell(Some(value)).replace(['\t', '\n'], " ")
        )?;
    }
    let columns = columns(&rows);
    for row in rows {
        let cells: Vec<String> = row_cells(row, &columns)
            .into_iter()
            .map(|c| c.replace(['\t', '\n'], " "))
            .collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(value: &Value, output: Output) -> String {
        let mut value = value.clone();
        iso_times(&mut value);
        let mut out = Vec::new();
        match output {
            Output::Json => writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&value).expect("json")
            )
            .expect("write"),
            Output::Table => write_table(&mut out, &value).expect("write"),
            Output::Text => write_text(&mut out, &value).expect("write"),
        }
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn a_list_answer_is_rows_and_its_token_a_line() {
        let answer = json!({"Users": [
            {"UserName": "alice", "CreateDate": 1765137000.0, "Arn": "arn:aws:iam::1:user/alice"},
            {"UserName": "bob", "CreateDate": 1765137060000_i64}
        ], "NextToken": "t1"});
        assert_eq!(
            render(&answer, Output::Text),
            "NextToken\tt1\narn:aws:iam::1:user/alice\t2025-12-07T19:50:00Z\talice\n\t2025-12-07T19:51:00Z\tbob\n"
        );
        let table = render(&answer, Output::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Arn                        CreateDate            UserName"
        );
        assert_eq!(
            lines[2],
            "arn:aws:iam::1:user/alice  2025-12-07T19:50:00Z  alice"
        );
        assert_eq!(
            lines[3],
            "                           2025-12-07T19:51:00Z  bob"
        );
        assert_eq!(lines[4], "NextToken: t1");
        assert!(render(&answer, Output::Json).contains("\"CreateDate\": \"2025-12-07T19:50:00Z\""));
    }

    #[test]
    fn a_single_object_is_one_row_with_nested_values_compact() {
        let answer = json!({"Name": "main", "IsLogging": true, "Selectors": [{"ReadWriteType": "All"}], "Extra": {"a": 1}});
        assert_eq!(
            render(&answer, Output::Text),
            "{\"a\":1}\ttrue\tmain\t[{\"ReadWriteType\":\"All\"}]\n"
        );
    }

    #[test]
    fn values_with_tabs_and_newlines_stay_on_their_line() {
        let answer = json!([{"Message": "a\tb\nc"}]);
        assert_eq!(render(&answer, Output::Text), "a b c\n");
        assert_eq!(
            render(&answer, Output::Table).lines().nth(2),
            Some("a\tb\\nc")
        );
    }
}
