//! Leaderboards: what a board ranks, how standings are computed from participant summaries,
//! and who takes the places that carry an award.
//!
//! Equal scores share a rank (1, 1, 3). Where a place carries an award and a tie straddles it,
//! the participant (or group) that reached the score earlier takes it; the reach times come
//! from the ledger and are asked for only for such ties (see `Standings::ties_to_break`).

use super::error::FieldErrors;
use super::rules::{Fields, Period};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Partitions of the live leaderboard index per program and month: 1,000 awards a second
/// spread over 16 partitions is about 60 a second on each, far under a partition's limit.
pub const BOARD_SHARDS: u8 = 16;

/// Most rows a board shows.
pub const MAX_SHOW: u32 = 100;

/// The shard of a participant in the live index: a stable hash (FNV-1a), so every month item
/// of a participant lands in the same shard.
pub fn board_shard(participant: &str) -> u8 {
    let hash = participant.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(BOARD_SHARDS)) as u8
}

/// The index partition a participant's month item is listed under: `{program}#{month}#{nn}`.
/// `None` when the program has no leaderboard, so its month items stay out of the index.
pub fn board_key(
    program: &super::program::Program,
    month: &str,
    participant: &str,
) -> Option<String> {
    (!program.close.boards.is_empty())
        .then(|| month_shard_key(&program.id, month, board_shard(participant)))
}

pub fn month_shard_key(program: &str, month: &str, shard: u8) -> String {
    format!("{program}#{month}#{shard:02}")
}

/// What a board counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Points the period's events earned (bonuses excluded).
    Points,
    /// Distinct days with a login.
    LoginDays,
    /// Events of these types.
    Events(Vec<String>),
}

impl Metric {
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Points => "points",
            Metric::LoginDays => "login_days",
            Metric::Events(_) => "events",
        }
    }

    /// The participant's value of the metric over the period.
    pub fn of(&self, totals: &Totals) -> i64 {
        match self {
            Metric::Points => totals.points,
            Metric::LoginDays => totals.login_days,
            Metric::Events(types) => types
                .iter()
                .map(|t| totals.counts.get(t).copied().unwrap_or(0))
                .sum(),
        }
    }

    /// Parses `metric` (and `events` for the events metric) of a board or drawing.
    pub(crate) fn parse(f: &Fields, errors: &mut FieldErrors) -> Option<Metric> {
        let events = f.get("events");
        let metric = match f.get("metric").map(|v| v.as_str()) {
            None => {
                errors.push(
                    f.at("metric"),
                    "is required (one of \"points\", \"login_days\", \"events\")",
                );
                None
            }
            Some(Some("points")) => Some(Metric::Points),
            Some(Some("login_days")) => Some(Metric::LoginDays),
            Some(Some("events")) => {
                return match events {
                    None => {
                        errors.push(
                            f.at("events"),
                            "is required with metric \"events\": a non-empty list of event types",
                        );
                        None
                    }
                    Some(Value::Array(types)) if !types.is_empty() => {
                        let mut counted = Vec::new();
                        for (i, t) in types.iter().enumerate() {
                            match t.as_str().filter(|_| is_event_type(t)) {
                                Some(t) => counted.push(t.to_owned()),
                                None => errors.push(
                                    format!("{}[{i}]", f.at("events")),
                                    format!("must be an event type (1 to 64 printable ASCII characters without spaces), got {t}"),
                                ),
                            }
                        }
                        (counted.len() == types.len()).then_some(Metric::Events(counted))
                    }
                    Some(other) => {
                        errors.push(
                            f.at("events"),
                            format!("must be a non-empty list of event types, got {other}"),
                        );
                        None
                    }
                };
            }
            Some(_) => {
                errors.push(
                    f.at("metric"),
                    format!(
                        "must be one of \"points\", \"login_days\", \"events\", got {}",
                        f.get("metric").expect("present")
                    ),
                );
                None
            }
        };
        if events.is_some() && metric.is_some() {
            errors.push(f.at("events"), "is only for metric \"events\"");
        }
        metric
    }
}

fn is_event_type(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic()))
}

/// A participant's counters over a period (summed from its months).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub points: i64,
    pub login_days: i64,
    pub counts: BTreeMap<String, i64>,
}

/// A group of participants a board can rank or be drawn up within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    Distributor,
    Location,
    Region,
}

impl Grouping {
    const NAMES: [(&'static str, Grouping); 3] = [
        ("distributor", Grouping::Distributor),
        ("location", Grouping::Location),
        ("region", Grouping::Region),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, g)| *g == self)
            .map(|(n, _)| *n)
            .expect("every grouping is named")
    }

    fn plural(self) -> &'static str {
        match self {
            Grouping::Distributor => "distributors",
            Grouping::Location => "locations",
            Grouping::Region => "regions",
        }
    }
}

/// Where the participant belongs, for grouping.
pub trait Placed {
    fn id(&self) -> &str;
    fn group(&self, grouping: Grouping) -> Option<&str>;
    fn role(&self) -> &str;
    /// Whether the participant takes part in boards and drawings (active status).
    fn competes(&self) -> bool;
    fn totals(&self) -> &Totals;
}

/// What a place on a board wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Award {
    /// Bonus points; for a group, each of its members gets them.
    pub points: i64,
    pub prize: Option<String>,
}

impl Award {
    pub fn describe(&self) -> String {
        match (&self.prize, self.points) {
            (Some(prize), 0) => prize.clone(),
            (Some(prize), points) => format!("{prize} and {points} points"),
            (None, points) => format!("{points} points"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    pub id: String,
    pub title: String,
    pub period: Period,
    pub metric: Metric,
    /// `None`: participants are ranked; `Some(g)`: groups are, by average per member.
    pub ranks: Option<Grouping>,
    /// `Some(g)`: one board per group (participant boards only).
    pub within: Option<Grouping>,
    pub show: u32,
    pub roles: Option<Vec<String>>,
    /// Members a group needs (competing participants) to be ranked.
    pub min_members: u32,
    /// Place 1 first.
    pub awards: Vec<Award>,
}

impl Board {
    /// Whether the live index serves this board during the period: program-wide participant
    /// boards of points or login days. The others are computed at close.
    pub fn is_live(&self) -> bool {
        self.ranks.is_none()
            && self.within.is_none()
            && self.roles.is_none()
            && matches!(self.metric, Metric::Points | Metric::LoginDays)
    }

    pub fn ranks_name(&self) -> &'static str {
        self.ranks.map_or("participants", Grouping::plural)
    }

    pub(crate) fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Board> {
        let f = Fields::of(
            value,
            path,
            &[
                "id",
                "title",
                "period",
                "metric",
                "events",
                "ranks",
                "within",
                "show",
                "roles",
                "min_members",
                "awards",
            ],
            errors,
        )?;
        let id = f.id("id", errors);
        let title = f.text("title", false, errors);
        let period = f.period(
            "period",
            &[Period::Month, Period::Quarter, Period::Year],
            errors,
        );
        let metric = Metric::parse(&f, errors);
        let ranks = match f.get("ranks").map(|v| v.as_str()) {
            None | Some(Some("participants")) => Some(None),
            Some(Some(plural)) => Grouping::NAMES
                .iter()
                .find(|(_, g)| g.plural() == plural)
                .map(|(_, g)| Some(*g)),
            Some(None) => None,
        };
        if ranks.is_none() {
            errors.push(
                f.at("ranks"),
                format!(
                    "must be one of \"participants\", \"distributors\", \"locations\", \"regions\", got {}",
                    f.get("ranks").expect("present")
                ),
            );
        }
        let within = grouping(&f, "within", errors);
        if within.is_some() && matches!(ranks, Some(Some(_))) {
            errors.push(f.at("within"), "is only for boards that rank participants");
        }
        let show = f
            .int("show", 1..=i64::from(MAX_SHOW), false, errors)
            .unwrap_or(10) as u32;
        let roles = f.texts("roles", errors);
        let min_members = f.int("min_members", 1..=10_000, false, errors).unwrap_or(1) as u32;
        let mut awards = Vec::new();
        for (i, award) in f.list("awards", errors).iter().enumerate() {
            let at = format!("{}[{i}]", f.at("awards"));
            let Some(g) = Fields::of(award, &at, &["places", "points", "prize"], errors) else {
                continue;
            };
            let places = g
                .int("places", 1..=i64::from(MAX_SHOW), false, errors)
                .unwrap_or(1);
            let points = g.int("points", 0..=1_000_000, false, errors).unwrap_or(0);
            let prize = g.text("prize", false, errors);
            if points == 0 && prize.is_none() {
                errors.push(at, "needs points, a prize, or both");
                continue;
            }
            for _ in 0..places {
                awards.push(Award {
                    points,
                    prize: prize.clone(),
                });
            }
        }
        if awards.len() > MAX_SHOW as usize {
            errors.push(f.at("awards"), format!("at most {MAX_SHOW} places in all"));
        }
        Some(Board {
            title: title.unwrap_or_else(|| id.clone().unwrap_or_default()),
            id: id?,
            period: period?,
            metric: metric?,
            ranks: ranks?,
            within,
            show,
            roles,
            min_members,
            awards,
        })
    }

    /// Whether a participant takes part in this board.
    pub fn admits(&self, participant: &impl Placed) -> bool {
        participant.competes()
            && self
                .roles
                .as_ref()
                .is_none_or(|roles| roles.iter().any(|r| r == participant.role()))
    }

    /// The standings of this board over `participants` (every enrolled participant, so
    /// group averages count members without activity too).
    pub fn standings<P: Placed>(&self, participants: &[P]) -> Vec<Standings> {
        let admitted = participants.iter().filter(|p| self.admits(*p));
        match (self.ranks, self.within) {
            (Some(grouping), _) => {
                let mut groups: BTreeMap<&str, (i64, u32)> = BTreeMap::new();
                for p in admitted {
                    if let Some(group) = p.group(grouping) {
                        let entry = groups.entry(group).or_default();
                        entry.0 += self.metric.of(p.totals());
                        entry.1 += 1;
                    }
                }
                let scored = groups
                    .into_iter()
                    .filter(|(_, (_, members))| *members >= self.min_members)
                    .map(|(group, (sum, members))| {
                        (
                            group.to_owned(),
                            Decimal::from(sum) / Decimal::from(members),
                        )
                    })
                    .collect();
                vec![Standings::rank(self, None, scored)]
            }
            (None, Some(grouping)) => {
                let mut boards: BTreeMap<&str, Vec<(String, Decimal)>> = BTreeMap::new();
                for p in admitted {
                    if let Some(group) = p.group(grouping) {
                        boards
                            .entry(group)
                            .or_default()
                            .push((p.id().to_owned(), self.metric.of(p.totals()).into()));
                    }
                }
                boards
                    .into_iter()
                    .map(|(group, scored)| Standings::rank(self, Some(group.to_owned()), scored))
                    .collect()
            }
            (None, None) => {
                let scored = admitted
                    .map(|p| (p.id().to_owned(), self.metric.of(p.totals()).into()))
                    .collect();
                vec![Standings::rank(self, None, scored)]
            }
        }
    }
}

fn grouping(f: &Fields, key: &str, errors: &mut FieldErrors) -> Option<Grouping> {
    let value = f.get(key)?;
    if value.as_str() == Some("program") {
        return None;
    }
    let found = Grouping::NAMES
        .iter()
        .find(|(n, _)| Some(*n) == value.as_str())
        .map(|(_, g)| *g);
    if found.is_none() {
        errors.push(
            f.at(key),
            format!(
                "must be one of \"program\", \"distributor\", \"location\", \"region\", got {value}"
            ),
        );
    }
    found
}

/// One row: who, the score, the shared rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub rank: u32,
    /// A participant id, or a group (location, distributor, region) id.
    pub name: String,
    pub score: Decimal,
}

/// One board's standings: every scored entry above zero, best first (ties by name, for a
/// stable listing; places are decided by `place`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standings {
    pub board: String,
    /// The group the board is drawn up within (`within`), if any.
    pub within: Option<String>,
    pub rows: Vec<Row>,
}

/// A place that carries an award, and who took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placing {
    pub place: u32,
    pub rank: u32,
    pub name: String,
    pub score: Decimal,
}

impl Standings {
    fn rank(board: &Board, within: Option<String>, mut scored: Vec<(String, Decimal)>) -> Self {
        scored.retain(|(_, score)| *score > Decimal::ZERO);
        scored.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut rows: Vec<Row> = Vec::with_capacity(scored.len());
        for (i, (name, score)) in scored.into_iter().enumerate() {
            let rank = match rows.last() {
                Some(last) if last.score == score => last.rank,
                _ => i as u32 + 1,
            };
            rows.push(Row {
                rank,
                name,
                score: score.normalize(),
            });
        }
        Standings {
            board: board.id.clone(),
            within,
            rows,
        }
    }

    /// The rows a board shows: every row ranked within `show` (ties at the edge included).
    pub fn shown(&self, show: u32) -> &[Row] {
        let end = self.rows.partition_point(|r| r.rank <= show);
        &self.rows[..end]
    }

    /// Tied entries whose order decides who takes an awarded place: each list shares one
    /// score and straddles or lies within the first `places` places.
    pub fn ties_to_break(&self, places: usize) -> Vec<Vec<String>> {
        let mut ties = Vec::new();
        let mut start = 0;
        while start < self.rows.len().min(places) {
            let end = start
                + self.rows[start..]
                    .iter()
                    .take_while(|r| r.score == self.rows[start].score)
                    .count();
            if end - start > 1 {
                ties.push(
                    self.rows[start..end]
                        .iter()
                        .map(|r| r.name.clone())
                        .collect(),
                );
            }
            start = end;
        }
        ties
    }

    /// Who takes each of the first `places` places: by score, then the earlier reach time
    /// (`reached`, for tied entries; an entry without one reached it last), then name.
    pub fn place(&self, places: usize, reached: &HashMap<String, Timestamp>) -> Vec<Placing> {
        let mut order: Vec<&Row> = self.rows.iter().collect();
        order.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| match (reached.get(&a.name), reached.get(&b.name)) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
                .then_with(|| a.name.cmp(&b.name))
        });
        order
            .into_iter()
            .take(places)
            .enumerate()
            .map(|(i, row)| Placing {
                place: i as u32 + 1,
                rank: row.rank,
                name: row.name.clone(),
                score: row.score,
            })
            .collect()
    }
}

/// One ledger entry as the reach-time computation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub occurred_at: Timestamp,
    /// The metric's change: points, or 1 for a counted event.
    pub amount: i64,
    /// For login days: the local date (`2026-11-03`) of a login.
    pub login_date: Option<String>,
}

/// When a participant first reached `score` of `metric`, given its period's contributions:
/// the instant the running total first got to the final score. Login days count once per date.
pub fn reached_at(
    metric: &Metric,
    score: i64,
    mut entries: Vec<Contribution>,
) -> Option<Timestamp> {
    entries.sort_by_key(|e| e.occurred_at);
    let mut total = 0;
    let mut dates = std::collections::HashSet::new();
    for entry in entries {
        total += match metric {
            Metric::LoginDays => entry.login_date.is_some_and(|d| dates.insert(d)).into(),
            _ => entry.amount,
        };
        if total >= score {
            return Some(entry.occurred_at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Rep {
        id: String,
        location: String,
        active: bool,
        totals: Totals,
    }

    impl Placed for Rep {
        fn id(&self) -> &str {
            &self.id
        }
        fn group(&self, grouping: Grouping) -> Option<&str> {
            (grouping == Grouping::Location).then_some(self.location.as_str())
        }
        fn role(&self) -> &str {
            "rep"
        }
        fn competes(&self) -> bool {
            self.active
        }
        fn totals(&self) -> &Totals {
            &self.totals
        }
    }

    fn rep(id: &str, location: &str, points: i64) -> Rep {
        Rep {
            id: id.into(),
            location: location.into(),
            active: true,
            totals: Totals {
                points,
                ..Default::default()
            },
        }
    }

    fn board(value: serde_json::Value) -> Board {
        let mut errors = FieldErrors::default();
        let board = Board::parse(&value, "leaderboards[0]", &mut errors);
        assert!(errors.is_empty(), "{:?}", errors.0);
        board.unwrap()
    }

    fn names(rows: &[Row]) -> Vec<(u32, &str)> {
        rows.iter().map(|r| (r.rank, r.name.as_str())).collect()
    }

    #[test]
    fn equal_scores_share_a_rank_and_zero_scores_are_not_ranked() {
        let b = board(json!({"id": "monthly", "period": "month", "metric": "points"}));
        let reps = [
            rep("d", "x", 50),
            rep("a", "x", 100),
            rep("c", "x", 50),
            rep("b", "x", 0),
        ];
        let standings = &b.standings(&reps)[0];
        assert_eq!(names(&standings.rows), [(1, "a"), (2, "c"), (2, "d")]);
        assert_eq!(names(standings.shown(2)), [(1, "a"), (2, "c"), (2, "d")]);
        assert_eq!(names(standings.shown(1)), [(1, "a")]);
    }

    #[test]
    fn a_tie_across_an_awarded_place_goes_to_the_earlier_reach() {
        let b = board(
            json!({"id": "monthly", "period": "month", "metric": "points",
            "awards": [{"points": 500}, {"points": 300}]}),
        );
        let reps = [
            rep("a", "x", 100),
            rep("b", "x", 80),
            rep("c", "x", 80),
            rep("d", "x", 10),
        ];
        let standings = &b.standings(&reps)[0];
        assert_eq!(
            standings.ties_to_break(2),
            [vec!["b".to_owned(), "c".to_owned()]]
        );
        let reached = HashMap::from([
            ("b".to_owned(), "2026-11-20T10:00:00Z".parse().unwrap()),
            ("c".to_owned(), "2026-11-12T10:00:00Z".parse().unwrap()),
        ]);
        let placed = standings.place(2, &reached);
        assert_eq!(placed[1].name, "c");
        assert_eq!(placed[1].rank, 2);
        // No tie inside the awarded places: nothing to look up.
        assert!(standings.ties_to_break(1).is_empty());
    }

    #[test]
    fn groups_rank_by_average_per_member_including_idle_members() {
        let b = board(
            json!({"id": "best-location", "period": "month", "metric": "points",
            "ranks": "locations", "min_members": 2, "awards": [{"points": 100}]}),
        );
        let reps = [
            rep("a", "north", 90),
            rep("b", "north", 0),
            rep("c", "south", 40),
            rep("d", "south", 40),
            rep("e", "solo", 1000),
        ];
        let standings = &b.standings(&reps)[0];
        assert_eq!(names(&standings.rows), [(1, "north"), (2, "south")]);
        assert_eq!(standings.rows[0].score, Decimal::from(45));
    }

    #[test]
    fn suspended_participants_do_not_compete_and_within_splits_boards() {
        let b = board(
            json!({"id": "local", "period": "quarter", "metric": "points",
            "within": "location"}),
        );
        let mut reps = vec![
            rep("a", "north", 5),
            rep("b", "south", 7),
            rep("c", "north", 9),
        ];
        reps[2].active = false;
        let boards = b.standings(&reps);
        assert_eq!(boards.len(), 2);
        assert_eq!(boards[0].within.as_deref(), Some("north"));
        assert_eq!(names(&boards[0].rows), [(1, "a")]);
    }

    #[test]
    fn bad_boards_are_reported_with_their_paths() {
        let mut errors = FieldErrors::default();
        Board::parse(
            &json!({"id": "x", "period": "week", "metric": "events", "ranks": "teams",
                "awards": [{"places": 2}], "extra": 1}),
            "leaderboards[1]",
            &mut errors,
        );
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "leaderboards[1].extra",
                "leaderboards[1].period",
                "leaderboards[1].events",
                "leaderboards[1].ranks",
                "leaderboards[1].awards[0]"
            ]
        );
    }

    #[test]
    fn reach_time_is_when_the_running_total_first_got_there() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let entry = |t: &str, amount, date: Option<&str>| Contribution {
            occurred_at: at(t),
            amount,
            login_date: date.map(str::to_owned),
        };
        let entries = vec![
            entry("2026-11-05T10:00:00Z", 50, None),
            entry("2026-11-02T10:00:00Z", 60, None),
            entry("2026-11-09T10:00:00Z", -10, None),
        ];
        assert_eq!(
            reached_at(&Metric::Points, 100, entries),
            Some(at("2026-11-05T10:00:00Z"))
        );
        let logins = vec![
            entry("2026-11-02T08:00:00Z", 1, Some("2026-11-02")),
            entry("2026-11-02T18:00:00Z", 1, Some("2026-11-02")),
            entry("2026-11-03T08:00:00Z", 1, Some("2026-11-03")),
        ];
        assert_eq!(
            reached_at(&Metric::LoginDays, 2, logins),
            Some(at("2026-11-03T08:00:00Z"))
        );
    }

    proptest::proptest! {
        /// A rank is one more than the number of strictly better scores; places go down the
        /// scores, each entry at most once, and a tie is broken by the earlier reach.
        #[test]
        fn ranks_and_places_follow_the_scores(
            scores in proptest::collection::vec(0i64..6, 0..40),
            places in 0usize..8,
            reach in proptest::collection::vec(0i64..1000, 40),
        ) {
            let b = board(json!({"id": "b", "period": "month", "metric": "points"}));
            let reps: Vec<Rep> = scores
                .iter()
                .enumerate()
                .map(|(i, s)| rep(&format!("r{i:02}"), "x", *s))
                .collect();
            let standings = &b.standings(&reps)[0];
            for row in &standings.rows {
                let better = standings.rows.iter().filter(|r| r.score > row.score).count();
                proptest::prop_assert_eq!(row.rank as usize, better + 1);
                proptest::prop_assert!(row.score > Decimal::ZERO);
            }
            let reached: HashMap<String, Timestamp> = (0..scores.len())
                .map(|i| (format!("r{i:02}"), Timestamp::from_second(reach[i]).unwrap()))
                .collect();
            let placed = standings.place(places, &reached);
            proptest::prop_assert_eq!(placed.len(), places.min(standings.rows.len()));
            for pair in placed.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                proptest::prop_assert!(a.score > b.score
                    || (a.score == b.score && reached[&a.name] <= reached[&b.name]));
            }
            let names: std::collections::HashSet<&str> =
                placed.iter().map(|p| p.name.as_str()).collect();
            proptest::prop_assert_eq!(names.len(), placed.len());
        }
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(board_shard("rep-1"), board_shard("rep-1"));
        let used: std::collections::HashSet<u8> = (0..1000)
            .map(|i| board_shard(&format!("rep-{i}")))
            .collect();
        assert_eq!(used.len(), BOARD_SHARDS as usize);
    }
}
