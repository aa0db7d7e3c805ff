//! `cairn bench filter`: the CIS pack (15 patterns) over N events shaped like the sample corpus,
//! one core, beside parsing the same bytes into `serde_json::Value` in the same run.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct FilterBenchArgs {
    /// Events to evaluate (the sample records, cycled).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Directory of NDJSON sample records.
    #[arg(long, default_value = "testdata/cloudtrail-samples/_normalized")]
    samples: PathBuf,
}

pub fn filter(args: FilterBenchArgs) -> anyhow::Result<()> {
    let mut samples: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&args.samples)
        .with_context(|| format!("reading {}", args.samples.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".ndjson") && !name.contains("digests") {
            samples.extend(
                std::fs::read_to_string(&path)?
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        }
    }
    if samples.is_empty() {
        bail!("no sample records in {}", args.samples.display());
    }
    samples.sort();
    let n = args.events;
    let bytes: usize = (0..n).map(|i| samples[i % samples.len()].len()).sum();
    let mb = bytes as f64 / 1e6;
    let patterns: Vec<cairn_filter::Pattern> = cairn_filter::cis::CONTROLS
        .iter()
        .map(|c| cairn_filter::parse(c.pattern))
        .collect::<Result<_, _>>()?;
    let set = cairn_filter::MatchSet::new(patterns.clone());

    let baseline = || -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut members = 0usize;
        for i in 0..n {
            let value: serde_json::Value = serde_json::from_str(&samples[i % samples.len()])?;
            members += value.as_object().map_or(0, |m| m.len());
        }
        std::hint::black_box(members);
        Ok(started.elapsed().as_secs_f64())
    };
    let before = baseline()?;
    let started = Instant::now();
    let mut fired = vec![0usize; patterns.len()];
    for i in 0..n {
        for (c, hit) in set
            .matches(&samples[i % samples.len()])
            .into_iter()
            .enumerate()
        {
            fired[c] += usize::from(hit);
        }
    }
    let lazy = started.elapsed().as_secs_f64();
    let after = baseline()?;
    let parse = (before + after) / 2.0;
    // Each pattern on its own (no shared lazy read), a tenth of the events, for reference.
    let tenth = n / 10;
    let started = Instant::now();
    for i in 0..tenth {
        for p in &patterns {
            std::hint::black_box(p.matches(&samples[i % samples.len()]));
        }
    }
    let separate = started.elapsed().as_secs_f64() * 10.0;
    println!(
        "cairn bench filter: CIS pack ({} patterns) over {n} events ({mb:.1} MB, {} distinct sample records), one core",
        patterns.len(),
        samples.len()
    );
    println!(
        "  pack, one lazy read per event:       {:>10.0} events/s  {:>7.1} MB/s",
        n as f64 / lazy,
        mb / lazy
    );
    println!(
        "  serde_json::Value parse (same run):  {:>10.0} events/s  {:>7.1} MB/s  (mean of before and after)",
        n as f64 / parse,
        mb / parse
    );
    println!(
        "  pack, each pattern reading alone:    {:>10.0} events/s  {:>7.1} MB/s",
        n as f64 / separate,
        mb / separate
    );
    println!("  pack / full parse: {:.2}", parse / lazy);
    let total: usize = fired.iter().sum();
    println!("  matches: {total} ({:?})", fired);
    Ok(())
}
