//! `carrot draw verify`: recomputes a prize drawing from its stored record and entrant list
//! and says what matches. The checks are the domain's (docs/drawings.md); this only fetches
//! or reads the record and prints the verdict.

use crate::REFUSED;
use crate::api::Api;
use crate::describe::plural;
use anyhow::{Context, anyhow, bail};
use carrot::domain::drawing::{DrawingRecord, Entrant, verify};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// One answer of `GET /v1/programs/{program}/drawings/{drawing}/{period}`, or an exported record.
struct Page {
    record: DrawingRecord,
    entrants: Vec<Entrant>,
    next: Option<String>,
}

/// Verifies the drawing `drawing` of `period`, read page by page from the admin API, after
/// checking that it is `program`'s.
pub async fn verify_remote(program: &str, drawing: &str, period: &str) -> anyhow::Result<ExitCode> {
    let api = Api::from_env()?;
    let path = format!("/drawings/{}/{}", encode(drawing), encode(period));
    let first = fetch(&api, &path).await?;
    if first.record.program != program {
        bail!(
            "drawing {drawing:?} of {period} belongs to program {:?}, not {program:?} (the key decides the program): nothing was verified",
            first.record.program
        );
    }
    let (record, mut entrants, mut next) = (first.record, first.entrants, first.next);
    while let Some(cursor) = next {
        let url = format!("{path}?after={}", encode(&cursor));
        let page = fetch(&api, &url).await?;
        if page.record != record {
            bail!(
                "the drawing's record changed while its entrants were being read: run the command again"
            );
        }
        if page.next.as_ref() == Some(&cursor) {
            bail!("GET {url} answered with the cursor it was given: the listing does not advance");
        }
        entrants.extend(page.entrants);
        next = page.next;
    }
    Ok(report(&record, &entrants))
}

/// Verifies an exported record: a file holding `{"record": …, "entrants": […]}`.
pub fn verify_file(path: &Path) -> anyhow::Result<ExitCode> {
    let page = read_export(path)?;
    Ok(report(&page.record, &page.entrants))
}

fn read_export(path: &Path) -> anyhow::Result<Page> {
    let text = crate::read(path)?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let page = page(body, &path.display().to_string())?;
    if page.next.is_some() {
        bail!(
            "{} holds one page of a longer listing (\"next\" is set): export every entrant",
            path.display()
        );
    }
    Ok(page)
}

async fn fetch(api: &Api, url: &str) -> anyhow::Result<Page> {
    let answer = api.get(url).await?;
    if answer.status != 200 {
        let text = |key: &str| answer.body[key].as_str().unwrap_or_default().to_owned();
        bail!(
            "GET {url} answered {} {}: {}",
            answer.status,
            text("title"),
            text("detail")
        );
    }
    page(answer.body, &format!("GET {url}"))
}

/// Reads `{"record": …, "entrants": […], "next": …}`; `source` names where it came from.
fn page(body: Value, source: &str) -> anyhow::Result<Page> {
    let Value::Object(mut fields) = body else {
        bail!("{source}: expected a JSON object with \"record\" and \"entrants\"");
    };
    let mut field = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| anyhow!("{source}: \"{name}\" is missing"))
    };
    let record = serde_json::from_value(field("record")?)
        .with_context(|| format!("{source}: \"record\" is not a drawing record"))?;
    let entrants = serde_json::from_value(field("entrants")?).with_context(|| {
        format!("{source}: \"entrants\" must be a list of {{\"participant\", \"entries\"}}")
    })?;
    let next = match fields.remove("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(cursor),
        Some(other) => bail!("{source}: \"next\" must be a string or null, got {other}"),
    };
    Ok(Page {
        record,
        entrants,
        next,
    })
}

/// Prints the verdict: success when every check passed, `REFUSED` when any failed.
fn report(record: &DrawingRecord, entrants: &[Entrant]) -> ExitCode {
    let (text, passed) = verdict(record, entrants);
    say!("{}", text.trim_end());
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(REFUSED)
    }
}

/// The checks, one line each, then the recorded winners and a summary; and whether every
/// check passed.
fn verdict(record: &DrawingRecord, entrants: &[Entrant]) -> (String, bool) {
    let verification = verify(record, entrants);
    let mut text = format!(
        "drawing {} of program {}, period {}: {}, committed {}, drawn {}\n",
        record.drawing,
        record.program,
        record.period,
        plural(entrants.len() as i64, "entrant"),
        record.committed_at,
        record.drawn_at.as_deref().unwrap_or("not yet"),
    );
    for check in &verification.checks {
        let status = if check.passed { "ok" } else { "FAILED" };
        let _ = writeln!(text, "{status:<6} {}: {}", check.name, check.detail);
    }
    if record.winners.is_empty() {
        text.push_str("no winners recorded\n");
    } else {
        text.push_str("winners:\n");
        for winner in &record.winners {
            let _ = writeln!(
                text,
                "  {} ({}): {}, ticket {}",
                winner.prize,
                plural(winner.points, "point"),
                winner.participant,
                winner.ticket
            );
        }
    }
    let failed = verification.checks.iter().filter(|c| !c.passed).count();
    if failed == 0 {
        text.push_str("verified: every check passed\n");
    } else {
        let _ = writeln!(
            text,
            "NOT verified: {failed} of {} checks failed",
            verification.checks.len()
        );
    }
    (text, verification.passed())
}

/// Percent-encodes a path segment or query value: everything but the unreserved characters.
pub fn encode(text: &str) -> String {
    text.bytes().fold(String::new(), |mut encoded, byte| {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
        encoded
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use carrot::domain::drawing::{Prize, commit, draw};
    use serde_json::json;

    fn export() -> (DrawingRecord, Vec<Entrant>) {
        let entrants: Vec<Entrant> = ["ann", "bob", "cid"]
            .iter()
            .zip([3, 1, 2])
            .map(|(participant, entries)| Entrant {
                participant: (*participant).to_owned(),
                entries,
            })
            .collect();
        let prizes = vec![Prize {
            name: "Gift card".to_owned(),
            points: 500,
        }];
        let seed = [7u8; 32];
        let record = commit(
            "acme",
            "monthly-login",
            "2026-05",
            &entrants,
            prizes,
            &seed,
            "2026-06-01T00:05:00Z",
        );
        let record = draw(&record, &entrants, &seed, "2026-06-01T00:06:00Z");
        (record, entrants)
    }

    fn write(name: &str, body: &Value) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("carrot-draw-{}-{name}.json", std::process::id()));
        std::fs::write(&path, body.to_string()).unwrap();
        path
    }

    #[test]
    fn an_exported_record_verifies_offline() {
        let (record, entrants) = export();
        let path = write("good", &json!({"record": record, "entrants": entrants}));
        let page = read_export(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (text, passed) = verdict(&page.record, &page.entrants);
        assert!(passed, "{text}");
        assert!(
            text.starts_with("drawing monthly-login of program acme, period 2026-05: 3 entrants")
        );
        assert!(text.contains("\nok     winners: "), "{text}");
        assert!(text.contains(&format!(
            "  Gift card (500 points): {}, ticket {}\n",
            record.winners[0].participant, record.winners[0].ticket
        )));
        assert!(text.ends_with("verified: every check passed\n"));
    }

    #[test]
    fn a_tampered_export_fails_the_right_checks() {
        let (mut record, entrants) = export();
        record.winners[0].participant = "zed".to_owned();
        let (text, passed) = verdict(&record, &entrants[1..]);
        assert!(!passed);
        for name in [
            "entrant_count",
            "ticket_count",
            "entrants_sha256",
            "winners",
        ] {
            assert!(
                text.contains(&format!("\nFAILED {name}: ")),
                "{name}: {text}"
            );
        }
        assert!(text.contains("\nok     seed_commitment: "), "{text}");
        assert!(
            text.ends_with("NOT verified: 4 of 7 checks failed\n"),
            "{text}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_whole_export_is_refused() {
        let (record, entrants) = export();
        let cases = [
            (json!({"entrants": entrants}), "\"record\" is missing"),
            (
                json!({"record": {"program": "acme"}, "entrants": []}),
                "is not a drawing record",
            ),
            (
                json!({"record": record, "entrants": [{"participant": "a"}]}),
                "\"entrants\" must be",
            ),
            (
                json!({"record": record, "entrants": entrants, "next": "c2"}),
                "one page of a longer listing",
            ),
            (json!([1, 2]), "expected a JSON object"),
        ];
        for (i, (body, problem)) in cases.into_iter().enumerate() {
            let path = write(&format!("bad-{i}"), &body);
            let error = read_export(&path).err().map(|e| format!("{e:#}"));
            std::fs::remove_file(&path).unwrap();
            assert!(
                error.as_deref().is_some_and(|e| e.contains(problem)),
                "case {i}: {error:?}"
            );
        }
    }

    #[test]
    fn path_segments_and_cursors_are_percent_encoded() {
        assert_eq!(encode("monthly-login_2.0~x"), "monthly-login_2.0~x");
        assert_eq!(encode("a/b c+d=é"), "a%2Fb%20c%2Bd%3D%C3%A9");
    }
}
