//! What the commands print: a program's summary (`validate`) and a backtest report.

use crate::table;
pub use carrot::domain::describe::plural;
use carrot::domain::describe::{
    campaign_text, expiry_text, local, pending_text, per, rule_text, rules,
};
use carrot::domain::program::Program;
use carrot::service::backtest::{BacktestReport, EXPIRY_HORIZON_DAYS, Points};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// The summary `validate` prints of a valid program.
pub fn program(path: &Path, program: &Program) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "{}: valid", path.display());
    let _ = writeln!(
        o,
        "program {} ({}), time zone {}, locale {}",
        program.id, program.name, program.time_zone_name, program.locale
    );
    let value = &program.document["points_value"];
    match (&value["amount"], value["currency"].as_str()) {
        (Value::String(amount), Some(currency)) => {
            let _ = writeln!(o, "a point costs {amount} {currency}");
        }
        (Value::Number(amount), Some(currency)) => {
            let _ = writeln!(o, "a point costs {amount} {currency}");
        }
        _ => {
            let _ = writeln!(
                o,
                "no points value: the backtest cannot price the liability"
            );
        }
    }
    match program.effective_from {
        Some(from) => {
            let _ = writeln!(o, "effective from {}", local(program, from));
        }
        None => {
            let _ = writeln!(o, "effective a minute after it is pushed");
        }
    }

    let mut types: Vec<&str> = Vec::new();
    for rule in &program.rules {
        for event_type in &rule.when.types {
            if !types.contains(&event_type.as_str()) {
                types.push(event_type);
            }
        }
    }
    let width = program
        .rules
        .iter()
        .map(|r| r.id.len() + r.version.to_string().len() + 2)
        .chain(
            program
                .campaigns
                .iter()
                .map(|c| c.id.len() + c.version.to_string().len() + 2),
        )
        .chain(program.budgets.iter().map(|b| b.id.len()))
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        o,
        "\nrules: {} for {} event types",
        program.rules.len(),
        types.len()
    );
    for event_type in types {
        let _ = writeln!(o, "  {event_type}");
        for rule in program.rules_for(event_type) {
            let name = format!("{} v{}", rule.id, rule.version);
            let _ = writeln!(o, "    {name:<width$}  {}", rule_text(program, rule));
        }
    }
    let _ = writeln!(o, "\ncampaigns: {}", program.campaigns.len());
    for campaign in &program.campaigns {
        let name = format!("{} v{}", campaign.id, campaign.version);
        let _ = writeln!(o, "  {name:<width$}  {}", campaign_text(program, campaign));
    }
    let _ = writeln!(o, "\nbudgets: {}", program.budgets.len());
    for budget in &program.budgets {
        let _ = writeln!(
            o,
            "  {:<width$}  {} {} over {} ({} shards)",
            budget.id,
            plural(budget.points, "point"),
            per(budget.per),
            rules(&budget.rules),
            budget.shards
        );
    }
    let _ = writeln!(o, "\nwallet");
    let _ = writeln!(o, "  pending: {}", pending_text(program));
    let _ = writeln!(o, "  expiry: {}", expiry_text(program));
    out
}

/// The backtest report as text tables.
pub fn backtest(program: &Program, report: &BacktestReport) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "backtest of {} as of {} ({} in {})",
        report.program, report.liability.as_of, report.liability.day, program.time_zone_name
    );
    let events = &report.events;
    let _ = writeln!(
        o,
        "\nevents: {} read, {} replayed, {} received after the as-of time, {} rejected",
        events.read,
        events.replayed,
        events.after_as_of,
        events.rejected.len()
    );
    for rejected in &events.rejected {
        let _ = writeln!(o, "  line {}: {}", rejected.line, rejected.reason);
    }
    let roster = &report.roster;
    let _ = writeln!(
        o,
        "roster: {} listed, {} enrolled at their first event as rep, {} rejected",
        roster.listed,
        roster.first_seen,
        roster.rejected.len()
    );
    for rejected in &roster.rejected {
        let _ = writeln!(o, "  line {}: {}", rejected.line, rejected.reason);
    }
    let outcomes: Vec<String> = report
        .outcomes
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let _ = writeln!(o, "outcomes: {}", outcomes.join(", "));

    // A row: its names, then the points columns.
    let with = |mut row: Vec<String>, p: &Points| {
        row.push(p.events.to_string());
        row.extend([p.earned, p.reversed, p.net].map(|n| n.to_string()));
        row
    };
    let totals = report.months.iter().fold(Points::default(), |mut t, m| {
        t.events += m.points.events;
        t.earned += m.points.earned;
        t.reversed += m.points.reversed;
        t.net += m.points.net;
        t
    });
    let mut rows: Vec<Vec<String>> = report
        .months
        .iter()
        .map(|m| with(vec![m.month.clone()], &m.points))
        .collect();
    rows.push(with(vec!["total".into()], &totals));
    let _ = write!(
        o,
        "\npoints per month\n{}",
        table::render(&["month", "events", "earned", "reversed", "net"], &rows)
    );
    let rows: Vec<Vec<String>> = report
        .rules
        .iter()
        .map(|r| with(vec![r.rule.clone(), r.version.to_string()], &r.points))
        .collect();
    let _ = write!(
        o,
        "\npoints per rule\n{}",
        table::render(
            &["rule", "version", "events", "earned", "reversed", "net"],
            &rows
        )
    );
    let rows: Vec<Vec<String>> = report
        .segments
        .iter()
        .map(|s| {
            let name = s.segment.clone().unwrap_or_else(|| "(none)".into());
            with(vec![name, s.participants.to_string()], &s.points)
        })
        .collect();
    let _ = write!(
        o,
        "\npoints per segment\n{}",
        table::render(
            &[
                "segment",
                "participants",
                "events",
                "earned",
                "reversed",
                "net"
            ],
            &rows
        )
    );
    if report.limits.is_empty() {
        let _ = writeln!(o, "\nno cap or budget bit");
    } else {
        let rows: Vec<Vec<String>> = report
            .limits
            .iter()
            .map(|l| {
                vec![
                    l.rule.clone(),
                    l.version.to_string(),
                    match (l.unit, l.limit, l.per) {
                        ("times", 1, "lifetime") => format!("{} once", l.by),
                        (unit, limit, "lifetime") => {
                            format!("{} {} in all", l.by, plural(limit, &unit[..unit.len() - 1]))
                        }
                        (unit, limit, per) => {
                            format!(
                                "{} {} a {per}",
                                l.by,
                                plural(limit, &unit[..unit.len() - 1])
                            )
                        }
                    },
                    l.events.to_string(),
                    l.withheld.to_string(),
                ]
            })
            .collect();
        let _ = write!(
            o,
            "\ncaps and budgets that bit\n{}",
            table::render(&["rule", "version", "limit", "events", "withheld"], &rows)
        );
    }

    let l = &report.liability;
    let cost = l
        .cost
        .as_ref()
        .map_or("no points value to price it".to_owned(), |c| {
            format!("{} {}", c.amount, c.currency)
        });
    let rows = vec![
        vec!["balance".to_owned(), l.balance.to_string()],
        vec!["  pending".to_owned(), l.pending.to_string()],
        vec!["  available".to_owned(), l.available.to_string()],
        vec![
            format!("expiring within {EXPIRY_HORIZON_DAYS} days"),
            l.expiring_within_90_days.to_string(),
        ],
        vec!["expired by the as-of day".to_owned(), l.expired.to_string()],
    ];
    let _ = write!(
        o,
        "\nliability at {}: {cost}\n{}",
        l.day,
        table::render(&["", "points"], &rows)
    );
    let rows: Vec<Vec<String>> = report
        .top_earners
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                e.participant.clone(),
                e.name.clone(),
                e.segment.clone().unwrap_or_default(),
                e.balance.to_string(),
                e.pending.to_string(),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "\ntop earners\n{}",
        table::render(
            &["#", "participant", "name", "segment", "balance", "pending"],
            &rows
        )
    );
    out
}
