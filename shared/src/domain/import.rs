//! Record files — JSON Lines (one object per line) or CSV (a header row naming the columns) —
//! read into one JSON object per record, and enrolment imports read from them. A bad record
//! is reported with the line it starts on and never stops the others; a CSV header that is
//! wrong, or a file that is too big, stops the whole file.

use super::error::{FieldError, FieldErrors, check_identifier};
use super::money::json_kind;
use super::participant::Enrolling;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The rows one import request may hold.
pub const MAX_ROWS: usize = 1_000;
/// The bytes one import request may hold.
pub const MAX_BYTES: usize = 1 << 20;

/// The columns a CSV file may have, and those holding JSON text.
pub struct Columns {
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
    pub json: &'static [&'static str],
}

/// An enrolment import's CSV columns: the profile flattened (the manager as two columns).
pub const ENROLMENT_COLUMNS: Columns = Columns {
    required: &[
        "participant",
        "name",
        "email",
        "locale",
        "time_zone",
        "role",
        "distributor",
        "location",
    ],
    optional: &[
        "phone",
        "region",
        "tier",
        "manager_name",
        "manager_email",
        "account",
        "enrolled_at",
        "status",
    ],
    json: &[],
};

/// One record of a file: the line it starts on, and the object or why it is not one.
pub type Record = (usize, Result<Map<String, Value>, String>);

/// The import file formats, by the request's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// `text/csv` or `application/x-ndjson` (also `application/jsonl`), parameters ignored.
    pub fn of_content_type(content_type: &str) -> Option<Format> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media.to_ascii_lowercase().as_str() {
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                Some(Format::JsonLines)
            }
            _ => None,
        }
    }
}

/// Every record of a JSON Lines text; blank lines are skipped.
pub fn json_lines(text: &str) -> Vec<Record> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let object = match serde_json::from_str(line) {
                Ok(Value::Object(object)) => Ok(object),
                Ok(other) => Err(format!("must be a JSON object, got {}", json_kind(&other))),
                Err(e) => Err(format!("is not JSON: {e}")),
            };
            (i + 1, object)
        })
        .collect()
}

/// CSV records as objects keyed by the header; an empty cell is left out, a JSON column is
/// parsed. `Err` names what is wrong with the header.
pub fn csv_records(text: &str, columns: &Columns) -> Result<Vec<Record>, String> {
    let mut rows = csv_rows(text).into_iter();
    let Some((_, header)) = rows.next() else {
        return Err("the file is empty: expected a header row".into());
    };
    let header = header.map_err(|reason| format!("header row: {reason}"))?;
    let header: Vec<String> = header
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    for name in &header {
        if !columns.required.contains(&name.as_str()) && !columns.optional.contains(&name.as_str())
        {
            return Err(format!(
                "header row: unknown column {name:?} (expected {:?}, optionally {:?})",
                columns.required, columns.optional
            ));
        }
        if header.iter().filter(|h| *h == name).count() > 1 {
            return Err(format!("header row: the {name:?} column is repeated"));
        }
    }
    for name in columns.required {
        if !header.iter().any(|h| h == name) {
            return Err(format!("header row: the {name:?} column is missing"));
        }
    }
    Ok(rows
        .map(|(line, row)| {
            let object = row.and_then(|cells| {
                if cells.len() != header.len() {
                    return Err(format!(
                        "has {} cells, the header {}",
                        cells.len(),
                        header.len()
                    ));
                }
                let mut object = Map::new();
                for (name, cell) in header.iter().zip(cells) {
                    if cell.is_empty() {
                        continue;
                    }
                    let value = if columns.json.contains(&name.as_str()) {
                        serde_json::from_str(&cell)
                            .map_err(|e| format!("{name}: is not JSON: {e}"))?
                    } else {
                        Value::String(cell)
                    };
                    object.insert(name.clone(), value);
                }
                Ok(object)
            });
            (line, object)
        })
        .collect())
}

/// RFC 4180 rows: comma-separated cells, a cell in double quotes may hold commas, line
/// breaks and doubled quotes. Each row comes with the line it starts on. Blank lines are
/// skipped.
fn csv_rows(text: &str) -> Vec<(usize, Result<Vec<String>, String>)> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut problem = None;
        loop {
            match chars.next() {
                None => break,
                Some('\n') => {
                    line += 1;
                    break;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some(',') => cells.push(std::mem::take(&mut cell)),
                Some('"') if cell.is_empty() => loop {
                    match chars.next() {
                        None => {
                            problem = Some("a quoted cell is not closed".to_owned());
                            break;
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cell.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            cell.push(c);
                        }
                    }
                },
                Some(c) => cell.push(c),
            }
        }
        cells.push(cell);
        if cells.len() == 1 && cells[0].trim().is_empty() && problem.is_none() {
            continue;
        }
        rows.push((start, problem.map_or(Ok(cells), Err)));
    }
    rows
}

/// One valid row of an enrolment import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The line of the file the row starts on.
    pub line: usize,
    pub participant: String,
    pub enrolling: Enrolling,
}

/// A row that is not imported, and every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    pub errors: Vec<FieldError>,
}

/// An import file read: its valid rows and its bad ones, in file order each.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub rows: Vec<ImportRow>,
    pub rejected: Vec<RowError>,
}

/// Reads an enrolment import. `Err` when the file as a whole cannot be imported (too big,
/// not UTF-8, a wrong CSV header, more than `MAX_ROWS` rows, no rows): nothing of it is.
/// A participant listed twice is refused on its later lines (the order of two writes of one
/// participant in one import would be a race).
pub fn parse(format: Format, body: &[u8], now: Timestamp) -> Result<Parsed, Vec<FieldError>> {
    let file = |reason: String| vec![FieldError::new("$", reason)];
    if body.len() > MAX_BYTES {
        return Err(file(format!(
            "is {} bytes, at most {MAX_BYTES} per request: split the file (the CLI sends it in chunks)",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| file("must be UTF-8 text".into()))?;
    let records = match format {
        Format::JsonLines => json_lines(text),
        Format::Csv => csv_records(text, &ENROLMENT_COLUMNS).map_err(file)?,
    };
    if records.is_empty() {
        return Err(file("holds no rows".into()));
    }
    if records.len() > MAX_ROWS {
        return Err(file(format!(
            "holds {} rows, at most {MAX_ROWS} per request: split the file (the CLI sends it in chunks)",
            records.len()
        )));
    }
    let mut parsed = Parsed::default();
    let mut lines: HashMap<String, usize> = HashMap::new();
    for (line, record) in records {
        let object = match record {
            Ok(object) => object,
            Err(reason) => {
                parsed.rejected.push(RowError {
                    line,
                    participant: None,
                    errors: vec![FieldError::new("$", reason)],
                });
                continue;
            }
        };
        let participant = object
            .get("participant")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match row(format, line, object, now) {
            Ok(row) => match lines.get(&row.participant) {
                Some(first) => parsed.rejected.push(RowError {
                    line,
                    participant,
                    errors: vec![FieldError::new(
                        "participant",
                        format!("is already listed on line {first}"),
                    )],
                }),
                None => {
                    lines.insert(row.participant.clone(), line);
                    parsed.rows.push(row);
                }
            },
            Err(errors) => parsed.rejected.push(RowError {
                line,
                participant,
                errors,
            }),
        }
    }
    Ok(parsed)
}

/// One record as an enrolment: a JSON Lines record is the body of
/// `PUT …/participants/{participant}` plus `participant`; a CSV record names the manager in
/// two columns, and its errors name the columns.
fn row(
    format: Format,
    line: usize,
    mut object: Map<String, Value>,
    now: Timestamp,
) -> Result<ImportRow, Vec<FieldError>> {
    if format == Format::Csv {
        let name = object.remove("manager_name");
        let email = object.remove("manager_email");
        if name.is_some() || email.is_some() {
            let mut manager = Map::new();
            manager.extend(name.map(|n| ("name".to_owned(), n)));
            manager.extend(email.map(|e| ("email".to_owned(), e)));
            object.insert("manager".into(), Value::Object(manager));
        }
    }
    let mut errors = FieldErrors::default();
    let participant = match object.get("participant") {
        Some(Value::String(id)) => {
            check_identifier(&mut errors, "participant", id.trim());
            id.trim().to_owned()
        }
        None | Some(Value::Null) => {
            errors.push("participant", "is required");
            String::new()
        }
        Some(other) => {
            errors.push(
                "participant",
                format!("must be a string, got {}", json_kind(other)),
            );
            String::new()
        }
    };
    let enrolling = Enrolling::from_json(&Value::Object(object), &["participant"], now)
        .map_err(|found| errors.0.extend(found))
        .ok();
    if format == Format::Csv {
        for error in &mut errors.0 {
            if let Some(column) = error.field.strip_prefix("manager.") {
                error.field = format!("manager_{column}");
            }
        }
    }
    errors.into_result(()).map(|()| ImportRow {
        line,
        participant,
        enrolling: enrolling.expect("checked"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::participant::{AccountKind, Status};

    const HEADER: &str = "participant,name,email,locale,time_zone,role,distributor,location,manager_name,manager_email,account,enrolled_at,status\n";

    fn now() -> Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn fields(error: &RowError) -> Vec<&str> {
        error.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn csv_cells_may_be_quoted_across_commas_quotes_and_lines() {
        let text = "a,b\r\n1,\"{\"\"x\"\": 1, \"\"y\"\": 2}\"\n\n\"two\nlines\",\n3,\"open";
        let rows = csv_rows(text);
        let cells = |i: usize| rows[i].1.clone();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 4, 6]);
        assert_eq!(cells(0), Ok(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(
            cells(1),
            Ok(vec!["1".to_owned(), r#"{"x": 1, "y": 2}"#.to_owned()])
        );
        assert_eq!(cells(2), Ok(vec!["two\nlines".to_owned(), String::new()]));
        assert_eq!(cells(3), Err("a quoted cell is not closed".to_owned()));
    }

    #[test]
    fn a_csv_import_reads_quoted_names_managers_backdating_and_status() {
        let text = format!(
            "{HEADER}\
             rep-1,\"Berg, Anna\",anna@d.example,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,Erik Lund,erik@d.example,,2026-03-01,\n\
             partner-1,\"Nordic \"\"HQ\"\"\nAccount\",hq@d.example,sv-SE,Europe/Stockholm,partner_admin,nordic,sthlm,,,partner,2026-03-01T09:00:00+01:00,suspended\n"
        );
        let parsed = parse(Format::Csv, text.as_bytes(), now()).unwrap();
        assert_eq!(parsed.rejected, []);
        let [anna, hq] = &parsed.rows[..] else {
            panic!("two rows: {parsed:?}")
        };
        assert_eq!((anna.line, anna.participant.as_str()), (2, "rep-1"));
        assert_eq!(anna.enrolling.profile.name, "Berg, Anna");
        assert_eq!(
            anna.enrolling.profile.manager.as_ref().unwrap().name,
            "Erik Lund"
        );
        // A date is its first moment where the participant is.
        assert_eq!(
            anna.enrolling.enrolled_at.unwrap().to_string(),
            "2026-02-28T23:00:00Z"
        );
        assert_eq!(anna.enrolling.status, None);
        assert_eq!(anna.enrolling.profile.account, AccountKind::Individual);
        assert_eq!(hq.line, 3);
        assert_eq!(hq.enrolling.profile.name, "Nordic \"HQ\"\nAccount");
        assert_eq!(hq.enrolling.profile.account, AccountKind::Partner);
        assert_eq!(hq.enrolling.status, Some(Status::Suspended));
        assert_eq!(
            hq.enrolling.enrolled_at.unwrap().to_string(),
            "2026-03-01T08:00:00Z"
        );
    }

    #[test]
    fn bad_csv_rows_name_their_line_and_columns_and_the_rest_are_read() {
        let text = format!(
            "{HEADER}\
             rep-1,Anna,anna@d.example,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,Erik,,,,\n\
             rep 2,Bo,bo@,sv-SE,Mars/Base,sales_rep,nordic,sthlm,,,boss,2027-01-01,retired\n\
             rep-3,Cai\n\
             rep-4,Cai,cai@d.example,sv-SE,UTC,sales_rep,nordic,sthlm,,,,,\n\
             rep-4,Cai,cai@d.example,sv-SE,UTC,sales_rep,nordic,sthlm,,,,,\n"
        );
        let parsed = parse(Format::Csv, text.as_bytes(), now()).unwrap();
        assert_eq!(parsed.rows.iter().map(|r| r.line).collect::<Vec<_>>(), [5]);
        let lines: Vec<usize> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4, 6]);
        assert_eq!(fields(&parsed.rejected[0]), ["manager_email"]);
        assert_eq!(
            fields(&parsed.rejected[1]),
            [
                "participant",
                "email",
                "time_zone",
                "account",
                "enrolled_at",
                "status"
            ]
        );
        assert_eq!(parsed.rejected[1].participant.as_deref(), Some("rep 2"));
        assert_eq!(fields(&parsed.rejected[2]), ["$"]);
        assert!(parsed.rejected[3].errors[0].reason.contains("line 5"));
    }

    #[test]
    fn json_lines_rows_are_enrolment_bodies_with_a_participant() {
        let text = r#"{"participant": "rep-1", "name": "Anna", "email": "anna@d.example", "locale": "sv-SE", "time_zone": "Europe/Stockholm", "role": "sales_rep", "distributor": "nordic", "location": "sthlm", "manager": {"name": "Erik", "email": "erik@d.example"}, "enrolled_at": "2026-03-01T00:00:00Z"}

{"participant": "rep-2", "name": "Bo", "shoe_size": 44}
[1, 2]
not json
"#;
        let parsed = parse(Format::JsonLines, text.as_bytes(), now()).unwrap();
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].line, 1);
        assert_eq!(
            parsed.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(fields(&parsed.rejected[0]).contains(&"shoe_size"));
        assert!(fields(&parsed.rejected[0]).contains(&"email"));
        assert_eq!(fields(&parsed.rejected[1]), ["$"]);
    }

    #[test]
    fn a_file_that_cannot_be_imported_is_refused_whole() {
        let refused = |format, text: &str| parse(format, text.as_bytes(), now()).unwrap_err();
        assert!(
            refused(Format::Csv, "participant,name,colour\n")[0]
                .reason
                .contains("\"colour\"")
        );
        assert!(
            refused(Format::Csv, "participant,name\n")[0]
                .reason
                .contains("\"email\"")
        );
        assert!(refused(Format::Csv, "")[0].reason.contains("empty"));
        assert!(
            refused(Format::JsonLines, "\n\n")[0]
                .reason
                .contains("no rows")
        );
        let many = "{}\n".repeat(MAX_ROWS + 1);
        assert!(
            refused(Format::JsonLines, &many)[0]
                .reason
                .contains("at most 1000")
        );
        let big = " ".repeat(MAX_BYTES + 1);
        assert!(refused(Format::JsonLines, &big)[0].reason.contains("bytes"));
    }

    #[test]
    fn content_types_pick_the_format() {
        assert_eq!(
            Format::of_content_type("text/csv; charset=utf-8"),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::of_content_type("application/x-ndjson"),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::of_content_type("application/json"), None);
    }
}
