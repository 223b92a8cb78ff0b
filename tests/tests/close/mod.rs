//! The period close on the local stack: a program with boards, a drawing and the stick, reps
//! with known activity in the three full months before the current one (so every close is
//! due), closed through the close function and read back through the admin routes and the
//! table.

mod crash;
mod month;
mod stick;

use anyhow::Context;
use carrot::domain::drawing::{DrawingRecord, Entrant};
use carrot::domain::envelope::BONUS_TYPE;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const ZONE: &str = "Europe/Stockholm";
/// Points of the program's table.
const LOGIN_POINTS: i64 = 5;
const DEAL_POINTS: i64 = 50;
/// How long the award function may take to credit what a test posted or a close queued.
const AWARD_IDLE: Duration = Duration::from_secs(120);

/// The program every close test runs, under its own id. Boards: the month's top three by
/// points, the quarter's top five by login days (a prize, no points), the month's best location
/// by average points. A monthly drawing among reps with 3 login days. The stick: fewer than 3
/// login days is a notice, none is a strike. Closes are due as soon as the month has ended.
fn program_yaml(program: &str) -> String {
    format!(
        r#"program: {program}
name: Close test {program}
time_zone: {ZONE}
locale: sv-SE
points:
  portal.login: {LOGIN_POINTS}
  deal.registered: {DEAL_POINTS}
leaderboards:
  - {{id: monthly-top, title: Monthly top sellers, period: month, metric: points, awards: [{{points: 500}}, {{points: 300}}, {{points: 200}}]}}
  - {{id: quarter-logins, title: Quarter logins, period: quarter, metric: login_days, show: 5, awards: [{{places: 5, prize: "Weekend trip"}}]}}
  - {{id: best-location, title: Best location, period: month, metric: points, ranks: locations, awards: [{{points: 100}}]}}
drawings:
  - {{id: monthly-draw, title: Monthly draw, period: month, metric: login_days, at_least: 3, prizes: [{{prize: "Gift card", points: 250}}, {{prize: "Mug"}}]}}
non_use: {{notice_below: 3, grace_days: 0}}
close: {{delay_hours: 0}}
"#
    )
}

/// A calendar month in the program's time zone.
#[derive(Debug, Clone)]
struct Month {
    label: String,
    first: Date,
}

impl Month {
    /// `hour`:00 local time on `day` of the month.
    fn at(&self, day: i8, hour: i8) -> Timestamp {
        let zone = TimeZone::get(ZONE).expect("the zone is known");
        self.first
            .with()
            .day(day)
            .build()
            .expect("a day of the month")
            .at(hour, 0, 0, 0)
            .to_zoned(zone)
            .expect("a local time in the zone")
            .timestamp()
    }

    /// The quarter the month is in (`2026-Q3`).
    fn quarter(&self) -> String {
        format!(
            "{:04}-Q{}",
            self.first.year(),
            (self.first.month() - 1) / 3 + 1
        )
    }
}

/// The three full months before the current one in the program's zone, oldest first: each has
/// ended, so its close is due.
fn past_months() -> anyhow::Result<[Month; 3]> {
    let today = Timestamp::now().to_zoned(TimeZone::get(ZONE)?).date();
    let month = |back: i32| -> anyhow::Result<Month> {
        let first = today.first_of_month().checked_sub(back.months())?;
        Ok(Month {
            label: format!("{:04}-{:02}", first.year(), first.month()),
            first,
        })
    };
    Ok([month(3)?, month(2)?, month(1)?])
}

/// A rep and what they did: logins (at 08:00) and registered deals (at 10:00) on given days.
#[derive(Debug, Clone)]
struct Rep {
    id: String,
    location: String,
    has_manager: bool,
    logins: Vec<Timestamp>,
    deals: Vec<Timestamp>,
}

impl Rep {
    fn new(id: &str, location: &str, has_manager: bool) -> Self {
        Rep {
            id: id.to_owned(),
            location: location.to_owned(),
            has_manager,
            logins: Vec::new(),
            deals: Vec::new(),
        }
    }

    fn logins(mut self, month: &Month, days: &[i8]) -> Self {
        self.logins.extend(days.iter().map(|d| month.at(*d, 8)));
        self
    }

    /// A second login on a day that already has one: more points, not more login days.
    fn evening_login(mut self, month: &Month, day: i8) -> Self {
        self.logins.push(month.at(day, 18));
        self
    }

    fn deals(mut self, month: &Month, days: &[i8]) -> Self {
        self.deals.extend(days.iter().map(|d| month.at(*d, 10)));
        self
    }

    fn profile(&self) -> Value {
        let mut profile = json!({"name": self.id, "email": format!("{}@dealer.example", self.id),
            "locale": "sv-SE", "time_zone": ZONE, "role": "sales_rep",
            "distributor": "nordic-dealer", "location": self.location});
        if self.has_manager {
            profile["manager"] = json!({"name": "Sales Manager",
                "email": format!("manager-of-{}@dealer.example", self.id)});
        }
        profile
    }

    fn events(&self) -> Vec<Value> {
        let logins = self.logins.iter().enumerate().map(|(i, at)| {
            json!({"id": format!("{}-login-{i}", self.id), "participant": self.id,
                "type": "portal.login", "occurred_at": at.to_string()})
        });
        let deals = self.deals.iter().enumerate().map(|(i, at)| {
            json!({"id": format!("{}-deal-{i}", self.id), "participant": self.id,
                "type": "deal.registered", "occurred_at": at.to_string(),
                "attributes": {"deal_id": format!("{}-deal-{i}", self.id)}})
        });
        logins.chain(deals).collect()
    }

    /// Points the rep's events earn in `month`.
    fn points_in(&self, month: &Month) -> i64 {
        let zone = TimeZone::get(ZONE).expect("the zone is known");
        let within = |at: &&Timestamp| {
            let date = at.to_zoned(zone.clone()).date();
            (date.year(), date.month()) == (month.first.year(), month.first.month())
        };
        LOGIN_POINTS * self.logins.iter().filter(within).count() as i64
            + DEAL_POINTS * self.deals.iter().filter(within).count() as i64
    }

    /// Points of every event of the rep.
    fn points(&self) -> i64 {
        LOGIN_POINTS * self.logins.len() as i64 + DEAL_POINTS * self.deals.len() as i64
    }
}

/// A program on a deployment: its configuration stored, a key of its CRM and a key of its
/// administrator (which may also read the leaderboards).
pub(crate) struct Tenant {
    pub(crate) id: String,
    pub(crate) crm: ApiClient,
    pub(crate) admin: ApiClient,
}

/// Enrols a participant as of `at`, as the import of an existing roster does.
pub(crate) async fn enrol_as_of(
    admin: &ApiClient,
    participant: &str,
    profile: &Value,
    at: Timestamp,
) -> anyhow::Result<()> {
    let mut row = profile.as_object().cloned().context("a profile")?;
    row.insert("participant".into(), json!(participant));
    row.insert("enrolled_at".into(), json!(at.to_string()));
    let imported = admin
        .send(
            "POST",
            "/imports",
            Value::Object(row).to_string().into_bytes(),
            "application/x-ndjson",
        )
        .await?;
    anyhow::ensure!(
        imported.status == 200 && imported.body["created"] == 1,
        "{imported:?}"
    );
    Ok(())
}

impl Tenant {
    async fn create(deployment: &Deployment, program: &str) -> anyhow::Result<Self> {
        Self::create_with(deployment, program, &program_yaml(program)).await
    }

    /// A tenant of `program` with the configuration `yaml`.
    pub(crate) async fn create_with(
        deployment: &Deployment,
        program: &str,
        yaml: &str,
    ) -> anyhow::Result<Self> {
        let crm = deployment
            .create_key(&format!("{program}-crm"), program, &["events:write"])
            .await?;
        let admin = deployment
            .create_key(
                &format!("{program}-admin"),
                program,
                &["admin", "participants:read"],
            )
            .await?;
        let stored = admin.put_program(yaml).await?;
        anyhow::ensure!(stored.status == 200, "program not stored: {stored:?}");
        Ok(Tenant {
            id: program.to_owned(),
            crm,
            admin,
        })
    }

    /// Enrols the reps as of before the months under test: the stick judges nobody for a
    /// month that ended before they enrolled.
    async fn enrol(&self, reps: &[Rep], before: &Month) -> anyhow::Result<()> {
        let enrolled_at = before
            .first
            .checked_sub(30.days())?
            .to_zoned(TimeZone::get(ZONE)?)?
            .timestamp();
        for rep in reps {
            enrol_as_of(&self.admin, &rep.id, &rep.profile(), enrolled_at).await?;
        }
        Ok(())
    }

    /// Posts every event of the reps; each is accepted.
    async fn post(&self, reps: &[Rep]) -> anyhow::Result<()> {
        let events: Vec<Value> = reps.iter().flat_map(Rep::events).collect();
        for chunk in events.chunks(250) {
            let response = self.crm.post_events(&json!({"events": chunk})).await?;
            anyhow::ensure!(response.status == 202, "{response:?}");
            anyhow::ensure!(
                response.body["accepted"].as_u64() == Some(chunk.len() as u64),
                "{response:?}"
            );
        }
        Ok(())
    }

    /// Closes the period through the close function; returns what it did.
    async fn close(&self, deployment: &Deployment, period: &str) -> anyhow::Result<Value> {
        let answer = deployment.close_period(&self.id, period).await?;
        let closed = &answer["closed"][0];
        anyhow::ensure!(
            closed["program"] == self.id.as_str() && closed["period"] == period,
            "{answer}"
        );
        Ok(closed.clone())
    }

    /// `GET {path}` as the administrator: 200 and the body.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.admin.get(path).await?;
        anyhow::ensure!(response.status == 200, "GET {path}: {response:?}");
        Ok(response.body)
    }

    /// A drawn record and its whole entrant list, page by page.
    async fn drawing(
        &self,
        drawing: &str,
        period: &str,
    ) -> anyhow::Result<(DrawingRecord, Vec<Entrant>)> {
        let path = format!("/drawings/{drawing}/{period}");
        let mut page = self.get(&path).await?;
        let record: DrawingRecord = serde_json::from_value(page["record"].clone())?;
        let mut entrants: Vec<Entrant> = serde_json::from_value(page["entrants"].clone())?;
        while let Some(next) = page["next"].as_str() {
            page = self.get(&format!("{path}?after={next}")).await?;
            entrants.extend(serde_json::from_value::<Vec<Entrant>>(
                page["entrants"].clone(),
            )?);
        }
        Ok((record, entrants))
    }

    /// One of the stick's lists of a closed month (a single page here).
    async fn list(&self, period: &str, list: &str) -> anyhow::Result<Vec<String>> {
        let page = self.get(&format!("/lists/{period}/{list}")).await?;
        anyhow::ensure!(page["next"].is_null(), "{page}");
        Ok(serde_json::from_value(page["participants"].clone())?)
    }

    /// A participant's status and balance as stored.
    async fn standing(
        &self,
        deployment: &Deployment,
        participant: &str,
    ) -> anyhow::Result<(String, i64)> {
        let state = deployment
            .store
            .participant(&self.id, participant)
            .await?
            .with_context(|| format!("{participant} is enrolled"))?;
        Ok((state.status, state.balance))
    }

    /// The close's credits in a participant's ledger (event id → points), and the balance.
    /// Fails unless each was recorded once by the bonus rule and the ledger sums to the
    /// balance.
    async fn bonuses(
        &self,
        deployment: &Deployment,
        participant: &str,
    ) -> anyhow::Result<(BTreeMap<String, i64>, i64)> {
        let ledger = deployment.store.ledger(&self.id, participant).await?;
        let (_, balance) = self.standing(deployment, participant).await?;
        let sum: i64 = ledger.iter().map(|r| r.points).sum();
        anyhow::ensure!(
            sum == balance,
            "the ledger of {participant} sums to {sum}, the balance is {balance}"
        );
        let mut bonuses = BTreeMap::new();
        for record in ledger
            .iter()
            .filter(|r| r.event_type.as_deref() == Some(BONUS_TYPE))
        {
            let rules: Vec<&str> = record.rules.iter().map(|l| l.id.as_str()).collect();
            anyhow::ensure!(rules == ["bonus"], "{record:?}");
            anyhow::ensure!(
                bonuses
                    .insert(record.event_id.clone(), record.points)
                    .is_none(),
                "{participant} has {} twice",
                record.event_id
            );
        }
        Ok((bonuses, balance))
    }
}

/// A board's rows as (rank, name, score).
fn rows(standings: &Value) -> Vec<(u64, String, String)> {
    standings["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["rank"].as_u64().unwrap_or(0),
                        text(&r["name"]),
                        text(&r["score"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A string, or a number's text (scores are decimals).
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// Expected rows from (rank, name, score).
fn expected_rows(rows: &[(u64, &str, i64)]) -> Vec<(u64, String, String)> {
    rows.iter()
        .map(|(rank, name, score)| (*rank, (*name).to_owned(), score.to_string()))
        .collect()
}

/// A notification request as the close queues it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Notice {
    kind: String,
    recipient: String,
    participant: String,
    period: String,
}

/// The requests of a drained notifications queue, of one program: by id, and how many were
/// received (an id received twice is a redelivery). Fails on a body that is not a request or
/// an id received with different contents.
fn notices_of(
    bodies: &[String],
    program: &str,
) -> anyhow::Result<(BTreeMap<String, Notice>, usize)> {
    let mut notices = BTreeMap::new();
    let mut received = 0;
    for body in bodies {
        let request: Value = serde_json::from_str(body).with_context(|| body.clone())?;
        if request["program"] != program {
            continue;
        }
        let notice = Notice {
            kind: text(&request["kind"]),
            recipient: text(&request["recipient"]),
            participant: text(&request["participant"]),
            period: text(&request["period"]),
        };
        let id = text(&request["id"]);
        received += 1;
        if let Some(earlier) = notices.insert(id.clone(), notice.clone()) {
            anyhow::ensure!(
                earlier == notice,
                "request {id} sent as {earlier:?} and as {notice:?}"
            );
        }
    }
    Ok((notices, received))
}

/// The `drawing.won` notices a drawn record implies.
fn won(record: &DrawingRecord) -> BTreeSet<Notice> {
    record
        .winners
        .iter()
        .map(|w| Notice {
            kind: "drawing.won".into(),
            recipient: "participant".into(),
            participant: w.participant.clone(),
            period: record.period.clone(),
        })
        .collect()
}
