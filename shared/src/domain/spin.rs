//! Spin to win: a participant spends a few points for a small chance at a configured prize.
//! The `spin` section of the program configuration (off unless `enabled: true`), the odds
//! table, and the draw against what is left of the prize budget.
//!
//! Odds are whole parts of `SCALE` (10^12), so a draw is integer arithmetic an auditor can
//! redo: a uniform number `r` in `0..SCALE` wins the prize whose range `[from, to)` holds it.

use super::error::{FieldErrors, check_identifier};
use super::period::Periods;
use super::program::MAX_POINTS_PER_EVENT;
use super::rules::{Fields, Period, decimal_of};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The resolution of the odds: a spin draws a number in `0..SCALE`.
pub const SCALE: u64 = 1_000_000_000_000;
pub const MAX_PRIZES: usize = 20;
/// The prefix of a spin's ledger records: `spin:{id}` (the cost) and `spin:{id}:prize`.
pub const RECORD_PREFIX: &str = "spin:";

const FIELDS: [&str; 5] = ["enabled", "cost", "prizes", "budget", "limit"];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpinConfig {
    /// Off unless the program turns it on.
    pub enabled: bool,
    /// Points a spin costs.
    pub cost: i64,
    pub prizes: Vec<Prize>,
    pub budget: Budget,
    /// How many spins one participant may make per period.
    pub limit: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prize {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub reward: Reward,
    /// As configured (`1/500`, `0.002`).
    pub odds: String,
    /// The chance in parts of `SCALE`.
    pub chance: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// Credited to the participant's balance.
    Points(i64),
    /// A physical prize: fulfilled like an order, through an outbound event.
    Item(String),
}

/// What the program pays out in prizes per period, at most.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Budget {
    pub per: Option<Period>,
    /// Prize points credited.
    pub points: Option<i64>,
    /// Prizes won (points prizes and items alike).
    pub prizes: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub per: Period,
    pub spins: i64,
}

/// The budget used so far in the current period, as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Used {
    pub points: i64,
    pub prizes: i64,
}

/// What the budget had left, per unit it limits (`None`: that unit is not limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Left {
    pub points: Option<i64>,
    pub prizes: Option<i64>,
}

/// One line of the odds table a spin was drawn with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub prize: String,
    pub odds: String,
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Won {
        prize: Prize,
    },
    NoPrize,
    /// The number hit a prize, but paying it would exceed the period's budget.
    BudgetSpent {
        drawn: String,
    },
}

impl SpinConfig {
    /// Reads the document's `spin` section (disabled when absent); errors carry its paths.
    pub(crate) fn parse(document: &Value, errors: &mut FieldErrors) -> SpinConfig {
        let Some(section) = document.get("spin").filter(|v| !v.is_null()) else {
            return SpinConfig::default();
        };
        let Some(f) = Fields::of(section, "spin", &FIELDS, errors) else {
            return SpinConfig::default();
        };
        let enabled = f.flag("enabled", errors);
        let cost = f
            .int("cost", 1..=MAX_POINTS_PER_EVENT, true, errors)
            .unwrap_or(0);
        if f.get("prizes").is_none() {
            errors.push(f.at("prizes"), "is required: at least one prize");
        }
        let listed = f.list("prizes", errors);
        if listed.len() > MAX_PRIZES || (f.get("prizes").is_some() && listed.is_empty()) {
            errors.push(
                f.at("prizes"),
                format!("must hold 1 to {MAX_PRIZES} prizes, got {}", listed.len()),
            );
        }
        let mut prizes: Vec<Prize> = Vec::new();
        for (i, value) in listed.iter().enumerate() {
            let path = format!("{}[{i}]", f.at("prizes"));
            if let Some(prize) = parse_prize(value, &path, errors) {
                if prizes.iter().any(|p| p.id == prize.id) {
                    errors.push(
                        format!("{path}.id"),
                        format!("{:?} is the id of an earlier prize", prize.id),
                    );
                }
                prizes.push(prize);
            }
        }
        let total: u64 = prizes.iter().map(|p| p.chance).sum();
        if total > SCALE {
            errors.push(
                f.at("prizes"),
                format!(
                    "the odds add up to more than 1 ({})",
                    Decimal::from(total) / Decimal::from(SCALE)
                ),
            );
        }
        let budget = match f.get("budget") {
            Some(value) => parse_budget(value, &f.at("budget"), errors),
            None => {
                errors.push(
                    f.at("budget"),
                    "is required: what prizes may pay out per period",
                );
                Budget::default()
            }
        };
        for (i, prize) in prizes.iter().enumerate() {
            if let (Reward::Points(points), Some(max)) = (&prize.reward, budget.points)
                && *points > max
            {
                errors.push(
                    format!("{}[{i}].points", f.at("prizes")),
                    format!("is more than the budget's {max} points: it could never be paid"),
                );
            }
        }
        let limit = f.get("limit").and_then(|value| {
            let path = f.at("limit");
            let g = Fields::of(value, &path, &["per", "spins"], errors)?;
            let per = g.period("per", &[Period::Day, Period::Week, Period::Month], errors);
            let spins = g.int("spins", 1..=1000, true, errors);
            Some(Limit {
                per: per?,
                spins: spins?,
            })
        });
        SpinConfig {
            enabled,
            cost,
            prizes,
            budget,
            limit,
        }
    }

    /// The odds table: each prize's range of numbers, in the configured order.
    pub fn table(&self) -> Vec<Line> {
        let mut from = 0;
        self.prizes
            .iter()
            .map(|p| {
                let line = Line {
                    prize: p.id.clone(),
                    odds: p.odds.clone(),
                    from,
                    to: from + p.chance,
                };
                from = line.to;
                line
            })
            .collect()
    }

    /// The outcome of the number `r` (in `0..SCALE`) given the budget used so far: a prize
    /// is paid only if the budget still has room for all of it.
    pub fn draw(&self, r: u64, used: Used) -> Outcome {
        let Some(prize) = self
            .table()
            .iter()
            .position(|line| (line.from..line.to).contains(&r))
            .map(|i| &self.prizes[i])
        else {
            return Outcome::NoPrize;
        };
        let points = match prize.reward {
            Reward::Points(points) => points,
            Reward::Item(_) => 0,
        };
        let fits = self
            .budget
            .points
            .is_none_or(|max| used.points + points <= max)
            && self.budget.prizes.is_none_or(|max| used.prizes < max);
        if fits {
            Outcome::Won {
                prize: prize.clone(),
            }
        } else {
            Outcome::BudgetSpent {
                drawn: prize.id.clone(),
            }
        }
    }

    /// What is left of the budget after `used`.
    pub fn left(&self, used: Used) -> Left {
        Left {
            points: self.budget.points.map(|max| max - used.points),
            prizes: self.budget.prizes.map(|max| max - used.prizes),
        }
    }
}

/// One spin as stored: everything needed to redo its draw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spin {
    pub id: String,
    pub participant: String,
    pub at: String,
    /// Points the spin cost (ledger record `spin:{id}`).
    pub cost: i64,
    /// The program configuration version whose `spin` section it was drawn under.
    pub config_version: u32,
    /// The number drawn, uniform in `0..scale`.
    pub random: u64,
    pub scale: u64,
    /// The odds table it was drawn with.
    pub odds: Vec<Line>,
    /// The budget period it counted in (`2026-11`), and what the budget had left before it.
    pub budget_period: String,
    pub budget_left: Left,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Spin {
    /// The points the spin credited.
    pub fn prize_points(&self) -> i64 {
        match &self.outcome {
            Outcome::Won {
                prize:
                    Prize {
                        reward: Reward::Points(points),
                        ..
                    },
            } => *points,
            _ => 0,
        }
    }
}

/// The label of the period `per` that `periods` falls in (`2026-11`, `2026-W47`).
pub fn period_label(per: Period, periods: &Periods) -> String {
    match per {
        Period::Day => periods.day.clone(),
        Period::Week => periods.week.clone(),
        Period::Month => periods.month.clone(),
        Period::Quarter => periods.quarter.clone(),
        Period::Year => periods.year.clone(),
        Period::Lifetime => "all".to_owned(),
    }
}

fn parse_prize(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Prize> {
    let before = errors.0.len();
    let f = Fields::of(
        value,
        path,
        &["id", "name", "points", "item", "odds"],
        errors,
    )?;
    let id = f.id("id", errors);
    let name = f.text("name", true, errors);
    let points = f.int("points", 1..=MAX_POINTS_PER_EVENT, false, errors);
    let item = f.text("item", false, errors);
    if let Some(item) = &item {
        check_identifier(errors, &f.at("item"), item);
    }
    let (has_points, has_item) = (f.get("points").is_some(), f.get("item").is_some());
    let reward = if has_points && has_item {
        errors.push(path, "has points or an item, not both");
        None
    } else if let Some(points) = points {
        Some(Reward::Points(points))
    } else if let Some(item) = item {
        Some(Reward::Item(item))
    } else {
        if !has_points && !has_item {
            errors.push(
                path,
                "needs points (credited) or an item (a physical prize)",
            );
        }
        None
    };
    let odds = parse_odds(&f, errors);
    (errors.0.len() == before).then(|| {
        let (odds, chance) = odds.expect("checked");
        Prize {
            id: id.expect("checked"),
            name: name.expect("checked"),
            reward: reward.expect("checked"),
            odds,
            chance,
        }
    })
}

/// `"1/500"` (one in N, N from 1 to 10^9) or a probability from 10^-12 to 1.
fn parse_odds(f: &Fields, errors: &mut FieldErrors) -> Option<(String, u64)> {
    let expected = "must be odds like \"1/500\" (one in N, N up to 1000000000) or a probability from 0.000000000001 to 1";
    let Some(value) = f.get("odds") else {
        errors.push(f.at("odds"), "is required: like \"1/500\" or 0.002");
        return None;
    };
    let chance = match value.as_str().and_then(|s| s.strip_prefix("1/")) {
        Some(n) => Some(n)
            .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| (1..=1_000_000_000).contains(n))
            .map(|n| Decimal::from(SCALE) / Decimal::from(n)),
        None => decimal_of(value)
            .filter(|p| *p > Decimal::ZERO && *p <= Decimal::ONE)
            .map(|p| p * Decimal::from(SCALE)),
    }
    .map(|parts| parts.round().to_string().parse::<u64>().unwrap_or(0))
    .filter(|parts| *parts >= 1);
    match chance {
        Some(chance) => Some((
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned),
            chance,
        )),
        None => {
            errors.push(f.at("odds"), format!("{expected}, got {value}"));
            None
        }
    }
}

fn parse_budget(value: &Value, path: &str, errors: &mut FieldErrors) -> Budget {
    let Some(f) = Fields::of(value, path, &["per", "points", "prizes"], errors) else {
        return Budget::default();
    };
    let per = f.period(
        "per",
        &[
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Quarter,
            Period::Year,
        ],
        errors,
    );
    let points = f.int("points", 1..=i64::from(i32::MAX) * 1000, false, errors);
    let prizes = f.int("prizes", 1..=1_000_000, false, errors);
    if f.get("points").is_none() && f.get("prizes").is_none() {
        errors.push(
            path,
            "needs points (prize points paid out) and/or prizes (prizes won)",
        );
    }
    Budget {
        per,
        points,
        prizes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config(section: Value) -> Result<SpinConfig, Vec<String>> {
        let mut errors = FieldErrors::default();
        let config = SpinConfig::parse(&json!({ "spin": section }), &mut errors);
        errors
            .into_result(config)
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    fn sample() -> SpinConfig {
        config(json!({
            "enabled": true, "cost": 10,
            "prizes": [
                {"id": "jackpot", "name": "5,000 points", "points": 5000, "odds": "1/500"},
                {"id": "small", "name": "50 points", "points": 50, "odds": 0.1},
                {"id": "headphones", "name": "Headphones", "item": "headphones", "odds": "1/1000"}
            ],
            "budget": {"per": "month", "points": 20000, "prizes": 100},
            "limit": {"per": "day", "spins": 3}
        }))
        .unwrap()
    }

    #[test]
    fn absent_means_off_and_the_sample_parses_into_exact_ranges() {
        assert!(!config(Value::Null).unwrap().enabled);
        let spin = sample();
        assert_eq!(spin.cost, 10);
        assert_eq!(
            spin.table()
                .iter()
                .map(|l| (l.from, l.to))
                .collect::<Vec<_>>(),
            [
                (0, 2_000_000_000),
                (2_000_000_000, 102_000_000_000),
                (102_000_000_000, 103_000_000_000)
            ]
        );
        assert_eq!(spin.limit.unwrap().spins, 3);
    }

    #[test]
    fn every_bad_field_is_named() {
        let fields = config(json!({
            "enabled": "yes", "cost": 0, "colour": "red",
            "prizes": [
                {"id": "a", "name": "A", "points": 10, "item": "x", "odds": "1/0"},
                {"id": "a", "name": "B", "points": 30000, "odds": 2},
                {"id": "c", "name": "C", "odds": "one in ten"}
            ],
            "budget": {"per": "lifetime"},
            "limit": {"per": "day", "spins": 0}
        }))
        .unwrap_err();
        for expected in [
            "spin.enabled",
            "spin.cost",
            "spin.colour",
            "spin.prizes[0]",
            "spin.prizes[0].odds",
            "spin.prizes[1].odds",
            "spin.prizes[2]",
            "spin.prizes[2].odds",
            "spin.budget",
            "spin.budget.per",
            "spin.limit.spins",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} not in {fields:?}"
            );
        }
        let too_likely = config(json!({"cost": 1, "budget": {"per": "day", "prizes": 1},
            "prizes": [{"id": "a", "name": "A", "points": 1, "odds": 0.6},
                       {"id": "b", "name": "B", "points": 1, "odds": "1/2"}]}))
        .unwrap_err();
        assert_eq!(too_likely, ["spin.prizes"]);
        let unpayable = config(json!({"cost": 1, "budget": {"per": "day", "points": 100},
            "prizes": [{"id": "a", "name": "A", "points": 101, "odds": "1/2"}]}))
        .unwrap_err();
        assert_eq!(unpayable, ["spin.prizes[0].points"]);
    }

    #[test]
    fn a_number_wins_the_prize_whose_range_holds_it_while_the_budget_has_room() {
        let spin = sample();
        let won = |r, used| match spin.draw(r, used) {
            Outcome::Won { prize } => prize.id,
            Outcome::NoPrize => "none".into(),
            Outcome::BudgetSpent { drawn } => format!("spent:{drawn}"),
        };
        assert_eq!(won(0, Used::default()), "jackpot");
        assert_eq!(won(1_999_999_999, Used::default()), "jackpot");
        assert_eq!(won(2_000_000_000, Used::default()), "small");
        assert_eq!(won(102_500_000_000, Used::default()), "headphones");
        assert_eq!(won(103_000_000_000, Used::default()), "none");
        assert_eq!(won(SCALE - 1, Used::default()), "none");
        let nearly = Used {
            points: 15_001,
            prizes: 3,
        };
        assert_eq!(won(0, nearly), "spent:jackpot");
        assert_eq!(won(2_000_000_000, nearly), "small");
        let out_of_prizes = Used {
            points: 0,
            prizes: 100,
        };
        assert_eq!(won(102_500_000_000, out_of_prizes), "spent:headphones");
    }

    proptest! {
        /// Whatever the numbers drawn, the prizes paid never exceed the budget.
        #[test]
        fn the_budget_is_never_exceeded(draws in proptest::collection::vec(0..SCALE / 4, 1..400),
                                        points in 5000i64..30000, prizes in 1i64..50) {
            let mut spin = sample();
            spin.budget = Budget { per: Some(Period::Month), points: Some(points), prizes: Some(prizes) };
            let mut used = Used::default();
            for r in draws {
                if let Outcome::Won { prize } = spin.draw(r, used) {
                    used.prizes += 1;
                    if let Reward::Points(p) = prize.reward { used.points += p; }
                }
                prop_assert!(used.points <= points && used.prizes <= prizes);
            }
        }

        /// Each prize wins on exactly its share of the numbers.
        #[test]
        fn the_ranges_are_the_odds(n in 1u64..1_000_000_000) {
            let spin = config(json!({"cost": 1, "budget": {"per": "day", "prizes": 1},
                "prizes": [{"id": "a", "name": "A", "points": 1, "odds": format!("1/{n}")}]})).unwrap();
            let line = &spin.table()[0];
            let exact = SCALE as f64 / n as f64;
            prop_assert!(((line.to - line.from) as f64 - exact).abs() <= 0.5);
        }
    }
}
