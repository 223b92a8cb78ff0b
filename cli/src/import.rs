//! `carrot import <reps.csv|reps.jsonl>`: enrols participants in bulk through
//! `POST …/imports`, in chunks the API takes (at most 1,000 rows and 1 MiB each), and prints
//! what became of each row, numbered by the line of the file it starts on.

use crate::api::Api;
use anyhow::{Context, bail};
use carrot::domain::import::{
    ENROLMENT_COLUMNS, MAX_BYTES, MAX_ROWS, Record, csv_records, json_lines,
};
use std::path::Path;
use std::process::ExitCode;

/// A part of the file sent in one request, and how its lines map back to the file's.
#[derive(Debug, PartialEq, Eq)]
struct Chunk {
    body: String,
    /// Lines of the chunk before its first record (the CSV header).
    header_lines: usize,
    /// The file's line of the chunk's first record.
    first_line: usize,
}

impl Chunk {
    /// The file's line of a line the server reports in this chunk.
    fn file_line(&self, line: usize) -> usize {
        self.first_line + line - self.header_lines - 1
    }
}

pub async fn import(path: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (chunks, content_type) = match extension.as_str() {
        "csv" => (
            chunks(
                &text,
                true,
                &csv_records(&text, &ENROLMENT_COLUMNS)
                    .map_err(|reason| anyhow::anyhow!("{}: {reason}", path.display()))?,
            ),
            "text/csv",
        ),
        "jsonl" | "ndjson" => (
            chunks(&text, false, &json_lines(&text)),
            "application/x-ndjson",
        ),
        _ => bail!(
            "{}: expected a .csv or .jsonl file, got {extension:?}",
            path.display()
        ),
    };
    if chunks.is_empty() {
        bail!("{}: holds no rows", path.display());
    }
    let api = Api::from_env()?;
    let mut totals = [0usize; 4];
    for chunk in &chunks {
        let answer = api
            .send(
                "POST",
                "/imports",
                chunk.body.clone().into_bytes(),
                content_type,
            )
            .await?;
        if answer.status != 200 {
            answer.print_problem("import refused");
            return Ok(ExitCode::from(crate::REFUSED));
        }
        for row in answer.body["results"].as_array().into_iter().flatten() {
            let line = chunk.file_line(row["line"].as_u64().unwrap_or(0) as usize);
            let participant = row["participant"].as_str().unwrap_or("?");
            let outcome = row["outcome"].as_str().unwrap_or("?");
            let released = match row["released_events"].as_u64() {
                Some(n) if n > 0 => format!(", {n} parked events released"),
                _ => String::new(),
            };
            say!("line {line}: {participant}: {outcome}{released}");
            if let Some(note) = row["note"].as_str() {
                say!("  note: {note}");
            }
            for error in row["errors"].as_array().into_iter().flatten() {
                say!(
                    "  {}: {}",
                    error["field"].as_str().unwrap_or("?"),
                    error["reason"].as_str().unwrap_or("?")
                );
            }
        }
        for (total, name) in totals
            .iter_mut()
            .zip(["created", "updated", "unchanged", "errors"])
        {
            *total += answer.body[name].as_u64().unwrap_or(0) as usize;
        }
    }
    let [created, updated, unchanged, errors] = totals;
    say!(
        "{}: {created} created, {updated} updated, {unchanged} unchanged, {errors} with errors",
        path.display()
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::REFUSED)
    })
}

/// The file cut at record boundaries into chunks of at most `MAX_ROWS` records and
/// `MAX_BYTES` bytes, each CSV chunk with the header.
fn chunks(text: &str, csv: bool, records: &[Record]) -> Vec<Chunk> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(first) = records.first().map(|(line, _)| *line) else {
        return Vec::new();
    };
    let header: String = if csv {
        lines[..first - 1].concat()
    } else {
        String::new()
    };
    let header_lines = if csv { first - 1 } else { 0 };
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut end = start;
        let mut bytes = header.len();
        while end < records.len() && end - start < MAX_ROWS {
            let from = records[end].0 - 1;
            let to = records
                .get(end + 1)
                .map_or(lines.len(), |(line, _)| line - 1);
            let size: usize = lines[from..to].iter().map(|l| l.len()).sum();
            if end > start && bytes + size > MAX_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let from = records[start].0 - 1;
        let to = records.get(end).map_or(lines.len(), |(line, _)| line - 1);
        chunks.push(Chunk {
            body: format!("{header}{}", lines[from..to].concat()),
            header_lines,
            first_line: records[start].0,
        });
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cut_at_records_keep_the_header_and_map_lines_back() {
        let mut text =
            "participant,name,email,locale,time_zone,role,distributor,location\n".to_owned();
        for i in 0..2_500 {
            text.push_str(&format!(
                "rep-{i},\"Rep\n{i}\",r{i}@d.example,sv-SE,UTC,sales_rep,d,l\n"
            ));
        }
        let records = csv_records(&text, &ENROLMENT_COLUMNS).unwrap();
        let chunks = chunks(&text, true, &records);
        assert_eq!(chunks.len(), 3);
        let rows: Vec<usize> = chunks
            .iter()
            .map(|c| csv_records(&c.body, &ENROLMENT_COLUMNS).unwrap().len())
            .collect();
        assert_eq!(rows, [1_000, 1_000, 500]);
        // The second chunk's first record (its line 2) is the file's record 1,000, which
        // starts on line 2 + 2 × 1,000.
        assert_eq!(chunks[1].file_line(2), 2_002);
        assert_eq!(chunks[1].file_line(4), 2_004);
        assert!(chunks[2].body.starts_with("participant,"));

        let jsonl = "{\"participant\": \"a\"}\n\n{\"participant\": \"b\"}\n";
        let chunks = super::chunks(jsonl, false, &json_lines(jsonl));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].file_line(3), 3);
    }
}
