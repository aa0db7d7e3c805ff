//! `cairn filter test`: what TestMetricFilter does, over local files.

use anyhow::{bail, Context};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum FilterCommand {
    /// Evaluate a filter pattern over messages: NDJSON or text lines, or CloudTrail
    /// `{"Records":[...]}` files (gzip detected); prints the matches (text) or one
    /// `{"line", "match", "values"}` object per event (`--output json`). Lines and records are
    /// numbered from 1. Exit 1 when the pattern is invalid.
    Test {
        /// The pattern (may start with `-`: `--pattern '-"health check"'`).
        #[arg(long, allow_hyphen_values = true)]
        pattern: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Files (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    /// The matches in columns: file, line, values, message (long ones cut).
    Table,
}

/// The messages of one input: the records of a Records file, else its non-empty lines.
fn messages(bytes: Vec<u8>, name: &str) -> anyhow::Result<Vec<String>> {
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        crate::input::gunzip_capped(&bytes, name)?
    } else {
        bytes
    };
    let text = String::from_utf8(bytes).context("input is not UTF-8")?;
    let trimmed = text.trim_start();
    if trimmed.starts_with("{\"Records\"") || trimmed.starts_with("{ \"Records\"") {
        if let Ok(records) = cairn_logfile::body::records(text.as_bytes()) {
            return Ok(records
                .into_iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect());
        }
    }
    Ok(text
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `cairn filter ...`.
pub fn run(command: FilterCommand) -> anyhow::Result<ExitCode> {
    let FilterCommand::Test {
        pattern,
        output,
        files,
    } = command;
    let parsed = match cairn_filter::parse(&pattern) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cairn: {e}");
            eprintln!("  {pattern}");
            eprintln!("  {}^", " ".repeat(e.position.min(pattern.chars().count())));
            return Ok(ExitCode::from(1));
        }
    };
    let mut stdout = std::io::stdout().lock();
    let (mut total, mut matched) = (0usize, 0usize);
    let name_width = files
        .iter()
        .map(|f| f.display().to_string().chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    if output == Output::Table {
        writeln!(
            stdout,
            "{:<name_width$}  {:>6}  {:<40}  message",
            "file", "event", "values"
        )?;
    }
    for file in &files {
        let bytes = if file.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        } else {
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
        };
        for (i, message) in messages(bytes, &file.display().to_string())?
            .iter()
            .enumerate()
        {
            total += 1;
            let result = parsed.evaluate(message);
            matched += usize::from(result.is_some());
            match output {
                Output::Json => writeln!(
                    stdout,
                    "{}",
                    json!({
                        "file": file.display().to_string(),
                        "line": i + 1,
                        "match": result.is_some(),
                        "values": result.unwrap_or_default(),
                    })
                )?,
                Output::Table => {
                    if let Some(values) = result {
                        let values = if values.is_empty() {
                            String::new()
                        } else {
                            json!(values).to_string()
                        };
                        let cut = |s: &str, n: usize| {
                            if s.chars().count() > n {
                                format!("{}…", s.chars().take(n - 1).collect::<String>())
                            } else {
                                s.to_owned()
                            }
                        };
                        writeln!(
                            stdout,
                            "{:<name_width$}  {:>6}  {:<40}  {}",
                            file.display(),
                            i + 1,
                            cut(&values, 40),
                            cut(&message.replace('\n', " "), 100)
                        )?;
                    }
                }
                Output::Text => {
                    if let Some(values) = result {
                        write!(stdout, "{}:{}: {message}", file.display(), i + 1)?;
                        if !values.is_empty() {
                            write!(stdout, "  {}", json!(values))?;
                        }
                        writeln!(stdout)?;
                    }
                }
            }
        }
    }
    if output != Output::Json {
        eprintln!("{matched} of {total} events match");
    }
    if total == 0 {
        bail!("no events in the input");
    }
    Ok(ExitCode::SUCCESS)
}
