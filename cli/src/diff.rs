//! `carrot diff`: what pushing a configuration would change in the deployed version, and
//! whether the server would refuse it.

use crate::api::Api;
use crate::{REFUSED, parse_config, print_errors};
use anyhow::anyhow;
use carrot::adapters::dynamo::PROGRAM_TTL;
use carrot::domain::error::FieldError;
use carrot::domain::program::Program;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

/// Sections compared entry by entry; every other top-level field is compared whole.
const LISTS: [&str; 3] = ["rules", "campaigns", "budgets"];
/// Longest JSON value shown in a change before it is cut short.
const SHOWN: usize = 80;

pub async fn diff(path: &Path) -> anyhow::Result<ExitCode> {
    let api = Api::from_env()?;
    let answer = api.send("GET", "", Vec::new(), "application/json").await?;
    let deployed = match answer.status {
        200 => {
            let version = answer.body["version"]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    anyhow!("GET /v1/programs/{{program}} answered without a version")
                })?;
            let document = answer.body["document"].clone();
            let program = Program::from_document(document, version).map_err(|errors| {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                anyhow!(
                    "the deployed version {version} does not parse here (is this CLI older than the server?): {}",
                    errors.join("; ")
                )
            })?;
            Some((program, answer.body["schedule"].clone()))
        }
        404 if answer.body["title"] == "No configuration" => None,
        _ => {
            answer.print_problem("could not read the deployed configuration");
            return Ok(ExitCode::from(REFUSED));
        }
    };
    let next = deployed.as_ref().map_or(1, |(p, _)| p.version + 1);
    let local = match parse_config(path, next)? {
        Ok((_, program)) => program,
        Err(code) => return Ok(code),
    };
    match &deployed {
        Some((program, _)) => say!(
            "deployed: {} version {}; {} would be version {next}",
            program.id,
            program.version,
            path.display()
        ),
        None => say!(
            "nothing is deployed for this key's program yet; {} would be version 1",
            path.display()
        ),
    }
    let before = deployed.as_ref().map(|(p, _)| p);
    let mut refusals = before.map_or_else(Vec::new, |d| local.check_versions(&[d]));
    if let Some(deployed) = before
        && deployed.id != local.id
    {
        refusals.push(FieldError::new(
            "program",
            format!(
                "the key configures program {:?}, this file {:?}",
                deployed.id, local.id
            ),
        ));
    }
    // The server's rule: a version takes effect no sooner than its functions' config TTL.
    let earliest = jiff::Timestamp::now()
        .checked_add(PROGRAM_TTL)
        .expect("a minute from now is a valid time");
    if let Some(from) = local.effective_from
        && from < earliest
    {
        refusals.push(FieldError::new(
            "effective_from",
            format!("{from} is too early: a change never applies retroactively and takes effect at least a minute after it is pushed (from {earliest})"),
        ));
    }

    let mut changed = false;
    for section in LISTS {
        let lines = section_changes(section, before, &local, &refusals);
        changed |= !lines.is_empty();
        if !lines.is_empty() {
            say!("{section}:");
            for line in lines {
                say!("  {line}");
            }
        }
    }
    let empty = Value::Object(Map::new());
    let fields = field_changes(
        before.map_or(&empty, |d| &d.document),
        &local.document,
        &[&LISTS[..], &["effective_from"]].concat(),
    );
    changed |= !fields.is_empty();
    if !fields.is_empty() {
        say!("other fields:");
        for line in fields {
            say!("  ~ {line}");
        }
    }
    match local.effective_from {
        Some(from) => say!("effective_from: {from}"),
        None => say!("effective_from: not set, in force a minute after it is pushed"),
    }
    if let Some((_, schedule)) = &deployed {
        let versions: Vec<String> = schedule
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "version {} from {}",
                    s["version"],
                    s["effective_from"].as_str().unwrap_or("?")
                )
            })
            .collect();
        say!("deployed schedule: {}", versions.join(", "));
    }
    if !refusals.is_empty() {
        say!("the server would refuse this push:");
        print_errors(path, &refusals);
        return Ok(ExitCode::from(REFUSED));
    }
    if !changed {
        say!("no changes");
    }
    Ok(ExitCode::SUCCESS)
}

/// One entry of a listed section: its id, version (budgets have none) and definition.
struct Entry<'a> {
    version: Option<u32>,
    definition: &'a Value,
}

fn entries<'a>(section: &str, program: Option<&'a Program>) -> BTreeMap<&'a str, Entry<'a>> {
    let Some(program) = program else {
        return BTreeMap::new();
    };
    match section {
        // The points table's rules are among the rules, versioned with the program.
        "rules" => program
            .rules
            .iter()
            .map(|r| {
                let entry = Entry {
                    version: Some(r.version),
                    definition: &r.definition,
                };
                (r.id.as_str(), entry)
            })
            .collect(),
        "campaigns" => program
            .campaigns
            .iter()
            .map(|c| {
                let entry = Entry {
                    version: Some(c.version),
                    definition: &c.definition,
                };
                (c.id.as_str(), entry)
            })
            .collect(),
        _ => program.document[section]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                let entry = Entry {
                    version: None,
                    definition: b,
                };
                Some((b.get("id")?.as_str()?, entry))
            })
            .collect(),
    }
}

/// `+ id`, `- id` and `~ id` lines for one section, each refused change with the server's
/// reason. Entries that differ only by a points-table version (it follows the program's)
/// are not changes.
fn section_changes(
    section: &str,
    deployed: Option<&Program>,
    local: &Program,
    refusals: &[FieldError],
) -> Vec<String> {
    let before = entries(section, deployed);
    let after = entries(section, Some(local));
    let version = |e: &Entry| e.version.map(|v| format!(" v{v}")).unwrap_or_default();
    let refusal = |id: &str| {
        let index = local.document[section]
            .as_array()?
            .iter()
            .position(|e| e.get("id").and_then(Value::as_str) == Some(id))?;
        let path = format!("{section}[{index}].version");
        refusals.iter().find(|r| r.field == path)
    };
    let mut lines = Vec::new();
    for (id, new) in &after {
        let refused = refusal(id);
        match before.get(id) {
            None => lines.push(format!("+ {id}{}", version(new))),
            Some(old) if old.definition != new.definition || refused.is_some() => {
                let mut line = match (old.version, new.version) {
                    (Some(old), Some(new)) => format!("~ {id} v{old} → v{new}"),
                    _ => format!("~ {id}"),
                };
                let fields = match (old.definition, new.definition) {
                    (Value::Object(_), Value::Object(_)) => {
                        field_changes(old.definition, new.definition, &["version"])
                    }
                    _ => Vec::new(),
                };
                if !fields.is_empty() {
                    line.push_str(&format!(": {}", fields.join("; ")));
                }
                if let Some(refused) = refused {
                    line.push_str(&format!("  [refused: {}]", refused.reason));
                }
                lines.push(line);
            }
            Some(_) => {}
        }
    }
    for (id, old) in &before {
        if !after.contains_key(id) {
            lines.push(format!("- {id}{}", version(old)));
        }
    }
    lines
}

/// `key: old → new` for every top-level key of two objects that differs, but `skip`.
fn field_changes(before: &Value, after: &Value, skip: &[&str]) -> Vec<String> {
    let keys: BTreeSet<&String> = [before, after]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(Map::keys)
        .filter(|k| !skip.contains(&k.as_str()))
        .collect();
    keys.into_iter()
        .filter(|k| before.get(k.as_str()) != after.get(k.as_str()))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                shown(before.get(k.as_str())),
                shown(after.get(k.as_str()))
            )
        })
        .collect()
}

fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(none)".into();
    };
    let text = value.to_string();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
