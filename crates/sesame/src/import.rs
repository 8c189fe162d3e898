//! `sesame import`: the reader of a "wide table" (JSON Lines or CSV, source
//! columns mapped to fields), the report of refused rows and the progress
//! line. The rows are checked, normalised and written by the app's import flow
//! ([`sesame_app::import`]) a batch at a time; running the same file again
//! skips what is there, so an interrupted import is resumed by running it
//! again.

use serde::Serialize;
use sesame_app::Stores;
use sesame_app::import::{BatchWriter, ImportRow as Row, Refusal, RefusalReason, prepare};
use sesame_credentials::NormaliseConfig;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The input's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// From the file's extension: `.csv` is CSV, anything else JSON Lines.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::JsonLines,
        }
    }
}

/// The fields Sesame reads, each with the source column it comes from.
pub const FIELDS: &[&str] = &[
    "id",
    "email",
    "email_verified",
    "phone",
    "phone_verified",
    "username",
    "password_hash",
    "display_name",
    "avatar_url",
    "bio",
    "locale",
    "created_at",
];

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input file.
    pub input: PathBuf,
    /// Its format.
    pub format: Format,
    /// Field → source column, for columns named otherwise than [`FIELDS`].
    pub mapping: HashMap<String, String>,
    /// Where refused rows are listed (JSON Lines).
    pub report: PathBuf,
    /// Rows per transaction.
    pub batch: usize,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Rows read.
    pub read: u64,
    /// Rows imported now.
    pub imported: u64,
    /// Rows whose principal was there already (an earlier run).
    pub already_present: u64,
    /// Rows refused, each listed in the report.
    pub refused: u64,
    /// Wall time.
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_second: f64,
}

/// Reads rows from the input, mapping source columns to fields.
struct Reader {
    rows: Box<dyn Iterator<Item = Result<Row, Refusal>>>,
}

impl Reader {
    fn open(options: &ImportOptions) -> Result<Self, String> {
        let file = std::fs::File::open(&options.input)
            .map_err(|e| format!("{}: {e}", options.input.display()))?;
        // source column → field
        let column_of = |field: &'static str| -> String {
            options
                .mapping
                .get(field)
                .cloned()
                .unwrap_or_else(|| field.to_owned())
        };
        let columns: Vec<(String, &'static str)> =
            FIELDS.iter().map(|f| (column_of(f), *f)).collect();
        match options.format {
            Format::JsonLines => {
                let lines = std::io::BufReader::new(file).lines();
                let rows = lines.enumerate().filter_map(move |(i, line)| {
                    let line_no = i as u64 + 1;
                    let text = match line {
                        Ok(t) => t,
                        Err(e) => {
                            return Some(Err(Refusal::new(
                                line_no,
                                None,
                                RefusalReason::Unreadable,
                                None,
                                Some(e.to_string()),
                            )));
                        }
                    };
                    if text.trim().is_empty() {
                        return None;
                    }
                    let object: serde_json::Map<String, serde_json::Value> =
                        match serde_json::from_str(&text) {
                            Ok(serde_json::Value::Object(o)) => o,
                            _ => {
                                return Some(Err(Refusal::new(
                                    line_no,
                                    None,
                                    RefusalReason::InvalidJson,
                                    None,
                                    None,
                                )));
                            }
                        };
                    let mut values = HashMap::new();
                    for (column, field) in &columns {
                        let value = match object.get(column) {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(serde_json::Value::Null) | None => continue,
                            Some(other) => other.to_string(),
                        };
                        values.insert(*field, value);
                    }
                    Some(Ok(Row {
                        line: line_no,
                        values,
                    }))
                });
                Ok(Self {
                    rows: Box::new(rows),
                })
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
                let headers = reader
                    .headers()
                    .map_err(|e| format!("{}: {e}", options.input.display()))?
                    .clone();
                let index: Vec<(usize, &'static str)> = columns
                    .iter()
                    .filter_map(|(column, field)| {
                        headers
                            .iter()
                            .position(|h| h == column)
                            .map(|i| (i, *field))
                    })
                    .collect();
                let rows = reader.into_records().enumerate().map(move |(i, record)| {
                    // Line 1 is the header.
                    let line_no = i as u64 + 2;
                    let record = record.map_err(|e| {
                        Refusal::new(
                            line_no,
                            None,
                            RefusalReason::InvalidCsv,
                            None,
                            Some(e.to_string()),
                        )
                    })?;
                    let values = index
                        .iter()
                        .filter_map(|(i, field)| record.get(*i).map(|v| (*field, v.to_owned())))
                        .collect();
                    Ok(Row {
                        line: line_no,
                        values,
                    })
                });
                Ok(Self {
                    rows: Box::new(rows),
                })
            }
        }
    }
}

/// Runs an import; refused rows go to the report, progress to stderr.
pub async fn run(
    stores: &Stores,
    normalise: &NormaliseConfig,
    options: &ImportOptions,
) -> Result<Summary, String> {
    let started = Instant::now();
    let mut reader = Reader::open(options)?;
    let report_file = std::fs::File::create(&options.report)
        .map_err(|e| format!("{}: {e}", options.report.display()))?;
    let mut report = std::io::BufWriter::new(report_file);
    let mut summary = Summary::default();
    let mut writer = BatchWriter::new(stores);
    let mut last_progress = Instant::now();
    let now = sesame_core::Clock::now(&sesame_core::SystemClock);
    loop {
        let batch: Vec<_> = reader.rows.by_ref().take(options.batch.max(1)).collect();
        if batch.is_empty() {
            break;
        }
        summary.read += batch.len() as u64;
        let mut refusals = Vec::new();
        let mut candidates = Vec::new();
        for row in batch {
            match row.and_then(|row| prepare(row, normalise, now)) {
                Ok(c) => candidates.push(c),
                Err(r) => refusals.push(r),
            }
        }
        let last_line = candidates.last().map_or(0, |c| c.line());
        let (written, present) = writer
            .write(candidates, &mut refusals)
            .await
            .map_err(|e| {
                format!(
                    "stopped at line {last_line}: {e}; every batch before it is committed: run the same import again to resume"
                )
            })?;
        summary.imported += written;
        summary.already_present += present;
        summary.refused += refusals.len() as u64;
        for r in &refusals {
            let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
            writeln!(report, "{line}").map_err(|e| e.to_string())?;
        }
        if options.progress && last_progress.elapsed().as_secs() >= 2 {
            last_progress = Instant::now();
            eprintln!(
                "sesame import: {} rows read, {} imported, {} already present, {} refused ({:.0} rows/s)",
                summary.read,
                summary.imported,
                summary.already_present,
                summary.refused,
                summary.read as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    report.flush().map_err(|e| e.to_string())?;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_second = summary.read as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}
