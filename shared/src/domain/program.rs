//! Program configuration v1: identity, time zone, locale, the points value, and the rules
//! engine's sections (rules, campaigns, budgets, wallet), plus the sections later features
//! read (leaderboards, drawings, non-use policy, segments, journeys, notifications).
//!
//! Award code asks the program what an event earns (`Program::evaluate`, in `engine`), never
//! a rule directly. The reference is docs/program-config.md.

use super::close::CloseConfig;
use super::error::{FieldError, FieldErrors};
use super::journey::{self, JourneysConfig};
use super::message::{self, NotificationsConfig};
use super::money::{Currency, json_kind, parse_amount};
use super::period::time_zone;
use super::rules::{
    Budget, Campaign, Fields, MAX_RULES, MAX_SHARDS, Rule, Wallet, parse_budget, parse_campaign,
    parse_rule, parse_wallet,
};
use super::segments::SegmentsConfig;
use super::spin::SpinConfig;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Largest award (or penalty) one event may carry.
pub const MAX_POINTS_PER_EVENT: i64 = 1_000_000;

/// The fields the rules engine reads; `RESERVED` lists the others a document may hold.
const FIELDS: [&str; 19] = [
    "program",
    "name",
    "time_zone",
    "locale",
    "effective_from",
    "points_value",
    "points",
    "rules",
    "campaigns",
    "budgets",
    "wallet",
    "leaderboards",
    "drawings",
    "non_use",
    "close",
    "segments",
    "journeys",
    "notifications",
    "spin",
];

/// Sections read by the features that use them, stored with the version like every other
/// section; the rules engine does not read them, and each must be an object or a list.
const RESERVED: [&str; 1] = ["catalog"];

#[derive(Debug, Clone)]
pub struct Program {
    pub id: String,
    pub name: String,
    pub time_zone: TimeZone,
    pub time_zone_name: String,
    pub locale: String,
    /// Stored version of this configuration; every ledger entry names it.
    pub version: u32,
    /// When this version starts to apply, by `occurred_at` (`None`: when it is stored).
    pub effective_from: Option<Timestamp>,
    /// What one point costs the program.
    pub points_value: Option<(Decimal, Currency)>,
    pub rules: Vec<Rule>,
    /// Rule indexes by event type: an event is matched against its own type's rules only.
    pub(crate) by_type: HashMap<String, Vec<usize>>,
    pub campaigns: Vec<Campaign>,
    pub budgets: Vec<Budget>,
    pub wallet: Wallet,
    /// Leaderboards, drawings and the non-use policy the period close applies.
    pub close: CloseConfig,
    /// How the daily run segments participants and derives their personal targets.
    pub segments: SegmentsConfig,
    /// Partner journeys by role: steps, milestones, nudges and catch-up offers.
    pub journeys: JourneysConfig,
    /// Sender name, quiet hours, frequency caps and the weekly digest.
    pub notifications: NotificationsConfig,
    /// Spin to win: cost, prizes and odds, the prize budget (off by default).
    pub spin: SpinConfig,
    /// The document as validated, stored verbatim so a version can be read back.
    pub document: Value,
}

/// Which rule, at which version, produced (part of) a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub version: u32,
}

impl Program {
    /// Parses a YAML or JSON document (YAML is a superset of JSON).
    pub fn parse(text: &str, version: u32) -> Result<Self, Vec<FieldError>> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            vec![FieldError::new(
                "$",
                format!("is not valid YAML or JSON: {e}"),
            )]
        })?;
        Self::from_document(value, version)
    }

    /// Validates a document, reporting every error with its path.
    pub fn from_document(document: Value, version: u32) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        if !document.is_object() {
            return Err(vec![FieldError::new(
                "$",
                format!("must be an object, got {}", json_kind(&document)),
            )]);
        }
        let allowed: Vec<&str> = FIELDS.iter().chain(&RESERVED).copied().collect();
        let f = Fields::of(&document, "", &allowed, &mut errors).expect("checked: an object");
        let id = f.text("program", true, &mut errors);
        let name = f.text("name", true, &mut errors);
        let zone_name = f.text("time_zone", true, &mut errors);
        let locale = f
            .text("locale", false, &mut errors)
            .unwrap_or_else(|| "en".to_owned());
        if let Some(id) = &id
            && let Err(reason) = check_program_id(id)
        {
            errors.push("program", reason);
        }
        let zone = zone_name.as_deref().and_then(|name| {
            time_zone(name)
                .map_err(|e| errors.push("time_zone", e))
                .ok()
        });
        let effective_from = f.time("effective_from", &mut errors);
        let points_value = f.get("points_value").and_then(|v| {
            let g = Fields::of(v, "points_value", &["amount", "currency"], &mut errors)?;
            let amount = g.get("amount").map(parse_amount);
            let currency = g
                .text("currency", true, &mut errors)
                .map(|c| Currency::parse(&c));
            match (amount, currency) {
                (Some(Ok(amount)), Some(Ok(currency))) => Some((amount, currency)),
                (amount, currency) => {
                    if let Some(Err(reason)) = amount {
                        errors.push("points_value.amount", reason);
                    } else if amount.is_none() {
                        errors.push("points_value.amount", "is required: what one point costs");
                    }
                    if let Some(Err(reason)) = currency {
                        errors.push("points_value.currency", reason);
                    }
                    None
                }
            }
        });
        let mut rules = points_table(&f, version, &mut errors);
        let listed = f.list("rules", &mut errors);
        if listed.len() > MAX_RULES {
            errors.push(
                "rules",
                format!("at most {MAX_RULES} rules, got {}", listed.len()),
            );
        }
        for (i, rule) in listed.iter().enumerate() {
            rules.extend(parse_rule(rule, &format!("rules[{i}]"), &mut errors));
        }
        let campaigns: Vec<Campaign> = f
            .list("campaigns", &mut errors)
            .iter()
            .enumerate()
            .filter_map(|(i, c)| parse_campaign(c, &format!("campaigns[{i}]"), &mut errors))
            .collect();
        let budgets: Vec<Budget> = f
            .list("budgets", &mut errors)
            .iter()
            .enumerate()
            .filter_map(|(i, b)| parse_budget(b, &format!("budgets[{i}]"), &mut errors))
            .collect();
        // An award reads every shard of its rules' budgets in one request of at most 100 keys.
        let shards: u32 = budgets.iter().map(|b| u32::from(b.shards)).sum();
        if shards > u32::from(MAX_SHARDS) {
            errors.push(
                "budgets",
                format!("at most {MAX_SHARDS} shards in all, got {shards}: an award reads every shard of its budgets at once"),
            );
        }
        let wallet = f
            .get("wallet")
            .map(|w| parse_wallet(w, "wallet", &mut errors))
            .unwrap_or_default();
        for section in RESERVED {
            if let Some(value) = f.get(section)
                && !(value.is_object() || value.is_array())
            {
                errors.push(
                    section,
                    format!("must be an object or a list, got {}", json_kind(value)),
                );
            }
        }
        let close = CloseConfig::parse(&document, &mut errors);
        let segments = SegmentsConfig::parse(&document, &mut errors);
        let journeys = journey::parse(&document, &mut errors);
        let notifications = message::parse(&document, &mut errors);
        let spin = SpinConfig::parse(&document, &mut errors);
        check_references(&document, &rules, &campaigns, &budgets, &mut errors);
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            for event_type in &rule.when.types {
                by_type.entry(event_type.clone()).or_default().push(i);
            }
        }
        let program = errors.is_empty().then(|| Program {
            id: id.expect("checked"),
            name: name.expect("checked"),
            time_zone: zone.expect("checked"),
            time_zone_name: zone_name.expect("checked"),
            locale,
            version,
            effective_from,
            points_value,
            rules,
            by_type,
            campaigns,
            budgets,
            wallet,
            close,
            segments,
            journeys,
            notifications,
            spin,
            document: document.clone(),
        });
        errors.into_result(()).map(|()| program.expect("checked"))
    }

    /// Errors for rules and campaigns whose versions would not mean one definition each:
    /// the ledger names rule versions, so a definition that differs from any stored one under
    /// the same id needs a version above every version that id ever had, and a rule unchanged
    /// since the latest stored version keeps its version. `history` is every stored version,
    /// oldest first (the latest last).
    pub fn check_versions(&self, history: &[&Program]) -> Vec<FieldError> {
        let versioned = |p: &'_ Program| -> Vec<(String, u32, Value)> {
            p.rules
                .iter()
                .map(|r| (r.id.clone(), r.version, r.definition.clone()))
                .chain(
                    p.campaigns
                        .iter()
                        .map(|c| (c.id.clone(), c.version, c.definition.clone())),
                )
                .collect()
        };
        // Per id: the highest version ever stored, and each stored (version → definition).
        let mut stored: BTreeMap<String, BTreeMap<u32, Value>> = BTreeMap::new();
        for program in history {
            for (id, version, definition) in versioned(program) {
                stored.entry(id).or_default().insert(version, definition);
            }
        }
        let latest: BTreeMap<String, (u32, Value)> = history
            .last()
            .map(|p| {
                versioned(p)
                    .into_iter()
                    .map(|(id, v, d)| (id, (v, d)))
                    .collect()
            })
            .unwrap_or_default();
        let mut errors = Vec::new();
        for (id, version, definition) in versioned(self) {
            let Some(path) = self.version_path(&id) else {
                continue; // the points table is versioned with the program
            };
            let Some(versions) = stored.get(&id) else {
                continue;
            };
            let highest = *versions.keys().next_back().expect("non-empty");
            match latest.get(&id) {
                Some((v, d)) if *d == definition && *v != version => {
                    errors.push(FieldError::new(
                        path,
                        format!(
                            "{id} is unchanged since the deployed version: keep its version {v}"
                        ),
                    ));
                    continue;
                }
                Some((v, d)) if *d == definition && *v == version => continue,
                _ => {}
            }
            if versions.get(&version).is_some_and(|d| *d != definition) || version < highest {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "{id} differs from its stored version {version}: give it a version above {highest}"
                    ),
                ));
            }
        }
        errors
    }

    /// The path of the `version` field of the rule or campaign `id` in this document.
    fn version_path(&self, id: &str) -> Option<String> {
        ["rules", "campaigns"].iter().find_map(|section| {
            self.document
                .get(*section)
                .and_then(Value::as_array)?
                .iter()
                .position(|r| r.get("id").and_then(Value::as_str) == Some(id))
                .map(|i| format!("{section}[{i}].version"))
        })
    }

    /// What one point costs, as text for reports (`0.10 SEK`).
    pub fn points_value_json(&self) -> Value {
        match &self.points_value {
            Some((amount, currency)) => {
                json!({"amount": amount.to_string(), "currency": currency.as_str()})
            }
            None => Value::Null,
        }
    }
}

/// The shorthand `points: {event type: points}`: one fixed rule per type, id `points-{type}`,
/// versioned with the program (the table has no versions of its own).
fn points_table(f: &Fields, version: u32, errors: &mut FieldErrors) -> Vec<Rule> {
    let Some(value) = f.get("points") else {
        return Vec::new();
    };
    let Some(table) = value.as_object() else {
        errors.push(
            "points",
            format!("must map event types to points, got {}", json_kind(value)),
        );
        return Vec::new();
    };
    let mut rules = Vec::new();
    for (event_type, points) in table {
        let field = format!("points[{event_type:?}]");
        let id = format!("points-{}", event_type.replace('.', "-"));
        let rule = json!({"id": id, "version": version.max(1), "when": {"type": event_type}, "award": {"points": points}});
        let mut own = FieldErrors::default();
        match parse_rule(&rule, &field, &mut own) {
            Some(rule) => rules.push(rule),
            None => {
                // Report against the table entry, not the rule it stands for.
                let reason = own
                    .0
                    .iter()
                    .map(|e| e.reason.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                errors.push(field, reason);
            }
        }
    }
    rules
}

/// Ids must be unique, and every list of rule ids must name rules of this document.
fn check_references(
    document: &Value,
    rules: &[Rule],
    campaigns: &[Campaign],
    budgets: &[Budget],
    errors: &mut FieldErrors,
) {
    let known: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    // A rule that failed to parse is already reported: references to it are not errors too.
    let written: Vec<&str> = document["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("id").and_then(Value::as_str))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (section, ids) in [
        ("rules", known.clone()),
        (
            "campaigns",
            campaigns.iter().map(|c| c.id.as_str()).collect(),
        ),
        ("budgets", budgets.iter().map(|b| b.id.as_str()).collect()),
    ] {
        seen.clear();
        for id in ids {
            if !seen.insert(id) {
                let i = document[section]
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .rposition(|r| r.get("id").and_then(Value::as_str) == Some(id))
                    })
                    .unwrap_or(0);
                errors.push(
                    format!("{section}[{i}].id"),
                    format!("{id:?} is used twice"),
                );
            }
        }
    }
    // References are read from the document itself, so an entry that failed to parse is
    // still checked and every path is the document's own index.
    let mut check = |path: String, ids: &Value| {
        for (j, id) in ids.as_array().into_iter().flatten().enumerate() {
            if let Some(id) = id.as_str()
                && !known.contains(&id)
                && !written.contains(&id)
            {
                errors.push(format!("{path}[{j}]"), format!("no rule has the id {id:?}"));
            }
        }
    };
    for section in ["campaigns", "budgets"] {
        for (i, entry) in document[section]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            check(format!("{section}[{i}].rules"), &entry["rules"]);
        }
    }
    check(
        "wallet.pending.rules".into(),
        &document["wallet"]["pending"]["rules"],
    );
}

/// Every stored version of a program, and which one is in force when.
///
/// A version applies to events that occurred at or after its effective time; a later version
/// replaces whatever an earlier one scheduled from its own effective time on. Events from
/// before the first version's effective time are evaluated under the first version.
#[derive(Debug, Clone)]
pub struct ProgramVersions {
    /// `(effective from, version)`, strictly increasing in time.
    timeline: Vec<(Timestamp, Arc<Program>)>,
    /// Every stored version, oldest first.
    all: Vec<Arc<Program>>,
}

impl ProgramVersions {
    /// `versions` in any order, each with its resolved effective time; `None` if empty.
    pub fn new(mut versions: Vec<(Timestamp, Arc<Program>)>) -> Option<Self> {
        versions.sort_by_key(|(_, p)| p.version);
        versions.last()?;
        let all = versions.iter().map(|(_, p)| p.clone()).collect();
        let mut timeline: Vec<(Timestamp, Arc<Program>)> = Vec::new();
        for (from, program) in versions {
            while timeline.last().is_some_and(|(t, _)| *t >= from) {
                timeline.pop();
            }
            timeline.push((from, program));
        }
        Some(Self { timeline, all })
    }

    pub fn single(program: Program, effective_from: Timestamp) -> Self {
        Self::new(vec![(effective_from, Arc::new(program))]).expect("one version")
    }

    /// The most recently stored version.
    pub fn latest(&self) -> &Arc<Program> {
        self.all.last().expect("at least one version")
    }

    /// Every stored version, oldest first.
    pub fn all(&self) -> Vec<&Program> {
        self.all.iter().map(|p| p.as_ref()).collect()
    }

    /// The version in force for an event that occurred at `at`.
    pub fn at(&self, at: Timestamp) -> &Arc<Program> {
        let i = self.timeline.partition_point(|(from, _)| *from <= at);
        &self.timeline[i.saturating_sub(1)].1
    }

    /// `(effective from, version)` of every version still in force somewhere on the timeline.
    pub fn schedule(&self) -> Vec<(Timestamp, u32)> {
        self.timeline.iter().map(|(t, p)| (*t, p.version)).collect()
    }
}

/// Program ids appear in keys and URLs: lower-case letters, digits and dashes.
pub fn check_program_id(id: &str) -> Result<(), String> {
    let ok = (2..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(())
        .ok_or_else(|| format!("must be 2 to 63 lower-case letters, digits or dashes, got {id:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../events/admin/program.yaml");

    #[test]
    fn the_sample_program_is_valid_and_indexes_rules_by_type() {
        let program = Program::parse(SAMPLE, 1).unwrap();
        assert_eq!(program.rules.len(), 12);
        let login: Vec<&str> = program
            .rules_for("portal.login")
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(login, ["first-login", "daily-login", "login-streak"]);
        assert_eq!(program.campaigns.len(), 2);
        assert_eq!(program.budgets[0].shards, 4);
    }

    fn version(n: u32) -> Arc<Program> {
        Arc::new(Program::parse(SAMPLE, n).unwrap())
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_version_applies_from_its_effective_time_and_a_later_one_replaces_what_was_scheduled() {
        let versions = ProgramVersions::new(vec![
            (at("2026-11-01T00:00:00Z"), version(1)),
            // Scheduled for December, then superseded by version 3 from 20 November.
            (at("2026-12-01T00:00:00Z"), version(2)),
            (at("2026-11-20T00:00:00Z"), version(3)),
        ])
        .unwrap();
        let in_force = |t: &str| versions.at(at(t)).version;
        assert_eq!(
            in_force("2026-10-01T00:00:00Z"),
            1,
            "before the first: the first"
        );
        assert_eq!(in_force("2026-11-19T23:59:59Z"), 1);
        assert_eq!(in_force("2026-11-20T00:00:00Z"), 3);
        assert_eq!(in_force("2026-12-15T00:00:00Z"), 3);
        assert_eq!(versions.latest().version, 3);
        assert_eq!(
            versions.schedule(),
            vec![
                (at("2026-11-01T00:00:00Z"), 1),
                (at("2026-11-20T00:00:00Z"), 3)
            ]
        );
    }

    #[test]
    fn a_changed_rule_needs_a_higher_version_and_an_unchanged_one_keeps_its_own() {
        let deployed = Program::parse(SAMPLE, 1).unwrap();
        let changed = SAMPLE.replace("award: { points: 5 }", "award: { points: 6 }");
        let errors = Program::parse(&changed, 2)
            .unwrap()
            .check_versions(&[&deployed]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "rules[1].version");
        let bumped = changed.replacen(
            "id: daily-login\n    version: 1",
            "id: daily-login\n    version: 2",
            1,
        );
        assert!(
            Program::parse(&bumped, 2)
                .unwrap()
                .check_versions(&[&deployed])
                .is_empty()
        );
        let needless = SAMPLE.replacen(
            "id: lead-tip\n    version: 1",
            "id: lead-tip\n    version: 2",
            1,
        );
        let errors = Program::parse(&needless, 2)
            .unwrap()
            .check_versions(&[&deployed]);
        assert_eq!(errors[0].field, "rules[9].version");
    }

    #[test]
    fn a_rule_removed_and_brought_back_changed_needs_a_version_above_any_it_had() {
        let v1 = Program::parse(SAMPLE, 1).unwrap();
        // Version 2 drops lead-tip; version 3 brings it back paying more, still as version 1.
        let without =
            Program::parse(&SAMPLE.replace("id: lead-tip", "id: lead-tip-old"), 2).unwrap();
        let back = Program::parse(
            &SAMPLE.replace("award: { points: 75 }", "award: { points: 90 }"),
            3,
        )
        .unwrap();
        let errors = back.check_versions(&[&v1, &without]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "rules[9].version");
        assert!(errors[0].reason.contains("above 1"), "{}", errors[0].reason);
    }

    #[test]
    fn references_are_checked_at_the_documents_own_index_even_in_invalid_entries() {
        let text = SAMPLE.replace(
            "    rules: [contract-volume, contract-count]\n    multiplier: 2",
            "    rules: [contract-volume, no-such-rule]\n    multiplier: lots",
        );
        let fields: Vec<String> = Program::parse(&text, 1)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(
            fields.contains(&"campaigns[0].multiplier".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"campaigns[0].rules[1]".to_owned()),
            "{fields:?}"
        );
    }

    #[test]
    fn budgets_hold_at_most_64_shards_in_all() {
        let budget = |id: &str, shards: u16| {
            format!("  - {{ id: {id}, per: month, points: 100000, shards: {shards} }}\n")
        };
        let program = |budgets: String| {
            Program::parse(
                &format!("program: acme\nname: A\ntime_zone: UTC\nbudgets:\n{budgets}"),
                1,
            )
        };
        assert!(program(budget("a", 32) + &budget("b", 32)).is_ok());
        let errors = program(budget("a", 64) + &budget("b", 2)).unwrap_err();
        assert_eq!(errors[0].field, "budgets", "{errors:?}");
    }

    #[test]
    fn every_error_is_listed_with_its_path() {
        let errors = Program::parse(
            "program: ACME\ntime_zone: Mars/Base\npoints:\n  Login: 5\n  deal.registered: lots\n  deal.cancelled: 1\ncolour: red\n",
            1,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "colour",
            "name",
            "program",
            "time_zone",
            "points[\"Login\"]",
            "points[\"deal.registered\"]",
            "points[\"deal.cancelled\"]",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn malformed_yaml_is_one_clear_error() {
        let errors = Program::parse("program: [", 1).unwrap_err();
        assert_eq!(errors[0].field, "$");
    }

    /// The worked example of docs/program-config.md, with the figures the page shows: a
    /// 250,000 SEK contract recorded on time in the December sprint by a rep 37 days after
    /// enrolment (inside the fast start), first with nothing counted yet, then with the
    /// month's volume cap nearly used, recorded six days late, and after each campaign.
    #[test]
    fn the_documented_worked_example_earns_what_the_reference_says() {
        use crate::domain::engine::{Counters, Evaluation, Guard, Op, Scope, Subject, Write};
        use crate::domain::envelope::parse_event;
        use crate::domain::period::Periods;
        let program = Program::parse(SAMPLE, 1).unwrap();
        let subject = Subject {
            role: Some("sales_rep"),
            segment: None,
            tier: None,
            distributor: Some("nordic-dealer"),
            location: Some("nordic-dealer-stockholm"),
            region: None,
            status: "active",
            enrolled_at: at("2026-11-02T08:00:00+01:00"),
        };
        let evaluate = |occurred: &str, received: &str, counters: &Counters| -> Evaluation {
            let contract = parse_event(
                &json!({"id": "sf-contract-0042", "participant": "rep-anna",
                    "type": "contract.started", "occurred_at": occurred,
                    "attributes": {"contract_id": "K-90042", "financed_volume": "250000", "currency": "SEK"}}),
                "",
                at(received),
            )
            .unwrap();
            let periods = Periods::of(contract.occurred_at, &program.time_zone);
            program.evaluate(&contract, at(received), &periods, &subject, counters)
        };
        let (occurred, on_time) = ("2026-12-09T14:30:00+01:00", "2026-12-10T09:00:00+01:00");
        let campaigns = json!([
            {"source": "campaign:december-sprint@1", "value": "2"},
            {"source": "campaign:fast-start@1", "value": "1.5"}
        ]);

        let fresh = evaluate(occurred, on_time, &Counters::default());
        assert_eq!(
            serde_json::to_value(&fresh).unwrap(),
            json!({"points": 900, "lines": [
                {"rule": "contract-volume", "version": 1, "points": 750, "uncapped": 750, "factors": campaigns},
                {"rule": "contract-count", "version": 1, "points": 150, "uncapped": 150, "factors": campaigns}],
                "pending_until": "2026-12-21", "expires_on": "2028-12-31"})
        );
        let write = |scope, name: &str, by, guard| Write {
            scope,
            name: name.into(),
            op: Op::Add(by),
            guard,
        };
        assert_eq!(
            fresh.writes,
            [
                write(Scope::Profile, "exp@2028-12-31", 900, Guard::Free),
                write(Scope::Profile, "pend@2026-12-21", 900, Guard::Free),
                write(
                    Scope::Month("2026-12".into()),
                    "p:contract-volume",
                    750,
                    Guard::AtMost(19_250)
                ),
                write(
                    Scope::Budget("contract-points#2026-12#01".into()),
                    "spent",
                    900,
                    Guard::AtMost(499_100)
                ),
            ]
        );

        let mut near_cap = Counters::default();
        near_cap
            .months
            .entry("2026-12".into())
            .or_default()
            .insert("p:contract-volume".into(), 19_500);
        let capped = serde_json::to_value(evaluate(occurred, on_time, &near_cap)).unwrap();
        assert_eq!(capped["points"], 650);
        assert_eq!(
            capped["lines"][0]["limited_by"],
            json!({"by": "cap", "per": "month", "unit": "points", "limit": 20000, "room": 500})
        );

        let late = evaluate(occurred, "2026-12-16T09:00:00+01:00", &Counters::default());
        let late = serde_json::to_value(late).unwrap();
        assert_eq!(late["points"], 525);
        assert_eq!(late["lines"][0]["points"], 375);
        assert_eq!(
            late["lines"][0]["factors"][0],
            json!({"source": "quality", "value": "0.5"})
        );

        // After the sprint only the fast start applies; from day 60 of membership, neither.
        let december_28 = "2026-12-28T10:00:00+01:00";
        let after_sprint = evaluate(december_28, december_28, &Counters::default());
        assert_eq!(after_sprint.points, 375 + 75);
        let january_8 = "2027-01-08T10:00:00+01:00";
        let after_fast_start = evaluate(january_8, january_8, &Counters::default());
        assert_eq!(after_fast_start.points, 250 + 50);
    }

    /// The shared cases of events/admin/config-cases.json, which scripts/check-program-schema.py
    /// also runs against the published schema: the parser accepts exactly the valid ones and
    /// names at least the listed paths of the invalid ones.
    #[test]
    fn the_shared_config_cases_are_decided_as_listed() {
        let cases: Vec<Value> =
            serde_json::from_str(include_str!("../../../events/admin/config-cases.json")).unwrap();
        let mut mismatches = Vec::new();
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let outcome = Program::from_document(case["document"].clone(), 1);
            match (case["valid"].as_bool().unwrap(), outcome) {
                (true, Ok(_)) => {}
                (true, Err(errors)) => mismatches.push(format!("{name}: refused: {errors:?}")),
                (false, Ok(_)) => mismatches.push(format!("{name}: accepted")),
                (false, Err(errors)) => {
                    let expected = case["fields"].as_array().unwrap();
                    assert!(!expected.is_empty(), "{name}: lists no fields");
                    for field in expected {
                        if !errors
                            .iter()
                            .any(|e| Some(e.field.as_str()) == field.as_str())
                        {
                            mismatches.push(format!("{name}: no error at {field}: {errors:?}"));
                        }
                    }
                }
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
