//! The period report: the figures a program manager reads after a month, quarter or year
//! closes (the JSON of `GET /v1/reports/{period}`), and the same report as one HTML page with
//! hand-written SVG charts (`GET /v1/reports/{period}/html`).
//!
//! The page has no JavaScript and loads nothing, so it can be mailed, archived or printed as
//! it is. Every text from the model is escaped: participant and location ids come from CRMs.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// The figures of one closed period. See docs/reports.md for what each one means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub program: String,
    /// `2026-11`, `2026-Q4` or `2026`.
    pub period: String,
    pub kind: PeriodKind,
    /// First and last day of the period (inclusive), in the program's time zone.
    pub starts_on: String,
    pub ends_on: String,
    pub time_zone: String,
    pub config_version: u32,
    /// RFC 3339.
    pub closed_at: String,
    /// What one point is worth, as decimal text (`"0.10"`), in `currency`.
    pub points_value: Option<String>,
    pub currency: Option<String>,
    pub participation: Participation,
    /// Index `d`: how many participants logged in on exactly `d` distinct days of the period.
    pub login_day_distribution: Vec<u64>,
    pub points: PointsSummary,
    /// Oldest first, at most 12; the last one is this period.
    pub history: Vec<HistoryPoint>,
    pub boards: Vec<BoardReport>,
    pub drawings: Vec<DrawingReport>,
    pub notices: NoticeSummary,
    /// Participants per segment; empty until segments are computed.
    pub segments: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    Month,
    Quarter,
    Year,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participation {
    /// Enrolled and not terminated at close.
    pub enrolled: u64,
    /// Had at least one event in the period.
    pub active: u64,
    pub suspended: u64,
    pub terminated: u64,
    /// Enrolled during the period.
    pub new: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsSummary {
    /// Points the period's events earned, net of the reversals in `reversed` (<= 0).
    pub issued: i64,
    pub reversed: i64,
    /// Bonuses credited by this close.
    pub bonuses: i64,
    /// The sum of all balances at close: the points the program owes.
    pub liability: i64,
    /// The part of `liability` not deposited yet.
    pub pending: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub period: String,
    pub enrolled: u64,
    pub active: u64,
    pub issued: i64,
    pub liability: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardReport {
    pub board: String,
    pub title: String,
    pub metric: String,
    pub period: String,
    /// What is ranked: `participants`, `locations`, ...
    pub ranks: String,
    /// The scope value the board is limited to, e.g. the distributor `nordic-tools`.
    pub within: Option<String>,
    pub rows: Vec<BoardRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    /// Tied rows share a rank.
    pub rank: u32,
    /// A participant or location id.
    pub name: String,
    /// Decimal text: averages have decimals (`"12.5"`).
    pub score: String,
    /// `"500 points"`, `"Weekend in Vegas"`.
    pub award: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawingReport {
    pub drawing: String,
    pub title: String,
    pub entrants: u64,
    pub tickets: u64,
    pub entrants_sha256: String,
    pub seed_commitment: String,
    pub seed: Option<String>,
    pub winners: Vec<DrawingWinner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawingWinner {
    pub prize: String,
    pub participant: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeSummary {
    pub below_threshold: u64,
    pub manager_emails: u64,
    pub zero_logins: u64,
    pub first_strikes: u64,
    pub suspended: u64,
    pub terminated: u64,
}

impl NoticeSummary {
    /// Every message the close sent: below-threshold, first-strike, suspension and termination
    /// notices, and the managers' emails. The zero-logins list is a list, not a message.
    pub fn sent(&self) -> u64 {
        [
            self.below_threshold,
            self.manager_emails,
            self.first_strikes,
            self.suspended,
            self.terminated,
        ]
        .iter()
        .fold(0, |total, &count| total.saturating_add(count))
    }
}

/// The report as one self-contained HTML5 page: inline CSS and SVG, no script, nothing loaded.
pub fn render_html(report: &Report) -> String {
    let title = format!(
        "{} · {} report",
        report.program,
        PeriodLabel::parse(&report.period).long()
    );
    [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        &format!("<title>{}</title>\n", escape(&title)),
        &format!("<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"),
        &header(report),
        &kpis(report),
        &charts(report),
        &boards(&report.boards),
        &drawings(report),
        &notices(&report.notices),
        "</main>\n</body>\n</html>\n",
    ]
    .concat()
}

const STYLE: &str = "
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--first:#2563eb;--second:#d97706;--bg:#f5f7fa}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:32px 24px 48px}
h1{margin:0;font-size:28px}
h2{margin:36px 0 12px;font-size:20px;border-bottom:2px solid var(--line);padding-bottom:6px}
h3{margin:0 0 4px;font-size:17px}
.subtitle{margin:2px 0 12px;font-size:20px;color:var(--muted)}
.meta{display:flex;flex-wrap:wrap;gap:4px 28px;margin:0;font-size:14px;color:var(--muted)}
.meta div{display:flex;gap:6px}
.meta dt{font-weight:600}
.meta dd{margin:0}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px;margin-top:24px}
.kpi,.card,figure.chart{background:#fff;border:1px solid var(--line);border-radius:8px}
.kpi{padding:14px 16px}
.kpi .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.kpi .value{font-size:28px;font-weight:700;font-variant-numeric:tabular-nums}
.kpi .note{font-size:13px;color:var(--muted)}
.charts{display:grid;gap:16px}
figure.chart{margin:0;padding:12px 16px;overflow-x:auto}
figcaption{font-weight:600;margin-bottom:6px}
svg{display:block;max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:12px;fill:var(--ink)}
svg .tick{font-size:11px;fill:var(--muted)}
svg .value-label{font-size:11px;font-variant-numeric:tabular-nums}
svg .grid{stroke:var(--line)}
svg .axis{stroke:#9aa5b1}
svg .line-0{stroke:var(--first);stroke-width:2.5;fill:none}
svg .line-1{stroke:var(--second);stroke-width:2.5;fill:none}
svg .dot-0,svg .swatch-0,svg .bar{fill:var(--first)}
svg .dot-1,svg .swatch-1{fill:var(--second)}
.card{padding:16px;margin-bottom:16px}
.card p{margin:4px 0}
.card table{margin-top:10px}
.about{color:var(--muted);font-size:14px}
table{width:100%;border-collapse:collapse}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:13px;color:var(--muted);font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.tie{margin-left:6px;font-size:11px;color:var(--muted)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
code.hash{word-break:break-all;overflow-wrap:anywhere}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;min-width:0}
.empty{color:var(--muted);font-style:italic}
@media print{body{background:#fff}.kpi,.card,figure.chart{break-inside:avoid}}
";

fn header(report: &Report) -> String {
    let closed = match local_time(&report.closed_at, &report.time_zone) {
        Some(local) => format!(
            "<time datetime=\"{}\">{}</time>",
            escape(&report.closed_at),
            escape(&local)
        ),
        None => escape(&report.closed_at),
    };
    let facts = [
        (
            "Period",
            format!(
                "{} to {}",
                escape(&report.starts_on),
                escape(&report.ends_on)
            ),
        ),
        ("Time zone", escape(&report.time_zone)),
        ("Closed", closed),
        ("Config version", report.config_version.to_string()),
    ]
    .map(|(term, value)| format!("<div><dt>{term}</dt><dd>{value}</dd></div>"))
    .concat();
    let kind = match report.kind {
        PeriodKind::Month => "Monthly",
        PeriodKind::Quarter => "Quarterly",
        PeriodKind::Year => "Yearly",
    };
    format!(
        "<header>\n<h1>{}</h1>\n<p class=\"subtitle\">{kind} report · {}</p>\n<dl class=\"meta\">{facts}</dl>\n</header>\n",
        escape(&report.program),
        escape(&PeriodLabel::parse(&report.period).long()),
    )
}

/// The closing instant in the program's time zone (`1 December 2026, 00:05 CET`).
fn local_time(rfc3339: &str, zone: &str) -> Option<String> {
    let instant: jiff::Timestamp = rfc3339.parse().ok()?;
    let zone = super::period::time_zone(zone).ok()?;
    jiff::fmt::strtime::format("%-d %B %Y, %H:%M %Z", &instant.to_zoned(zone)).ok()
}

fn kpis(report: &Report) -> String {
    let people = &report.participation;
    let points = &report.points;
    let liability_note = {
        let pending = format!("{} pending", grouped(points.pending.into()));
        match report.points_value.as_deref() {
            Some(per_point) => {
                match money(points.liability, per_point, report.currency.as_deref()) {
                    Ok(worth) => format!("worth {worth} · {pending}"),
                    Err(problem) => format!("{problem} · {pending}"),
                }
            }
            None => pending,
        }
    };
    let tiles = [
        kpi(
            "Enrolled",
            &grouped(people.enrolled.into()),
            &format!(
                "{} new · {} suspended · {} terminated, not counted",
                grouped(people.new.into()),
                grouped(people.suspended.into()),
                grouped(people.terminated.into())
            ),
        ),
        kpi(
            "Active",
            &grouped(people.active.into()),
            "had at least one event",
        ),
        kpi(
            "Active rate",
            &rate_in_tenths(people.active, people.enrolled).map_or("–".to_owned(), percent),
            "active ÷ enrolled",
        ),
        kpi(
            "Points issued",
            &grouped(points.issued.into()),
            // `reversed` is <= 0: the note names how many points were taken back.
            &format!("net of {} reversed", grouped(-i128::from(points.reversed))),
        ),
        kpi(
            "Bonuses",
            &grouped(points.bonuses.into()),
            "points credited by this close",
        ),
        kpi(
            "Liability",
            &grouped(points.liability.into()),
            &liability_note,
        ),
        kpi(
            "Notices sent",
            &grouped(report.notices.sent().into()),
            &format!(
                "incl. {} to managers",
                plural(report.notices.manager_emails, "email", "emails")
            ),
        ),
    ]
    .concat();
    format!("<section class=\"kpis\">\n{tiles}</section>\n")
}

/// A KPI tile. `value` and `note` are escaped here.
fn kpi(label: &str, value: &str, note: &str) -> String {
    format!(
        "<div class=\"kpi\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>\n",
        escape(label),
        escape(value),
        escape(note)
    )
}

/// `active / enrolled` in tenths of a percent, rounded half up; `None` when nobody is enrolled.
fn rate_in_tenths(active: u64, enrolled: u64) -> Option<i128> {
    let (active, enrolled) = (i128::from(active), i128::from(enrolled));
    (enrolled > 0).then(|| (active * 2000 + enrolled) / (2 * enrolled))
}

/// Tenths of a percent as `47.3%`.
fn percent(tenths: i128) -> String {
    format!("{}.{}%", tenths / 10, (tenths % 10).abs())
}

/// `points × per_point`, to the cent (half away from zero), with thousands separators and the
/// currency: `123,456.70 SEK`.
fn money(points: i64, per_point: &str, currency: Option<&str>) -> Result<String, String> {
    let per_point_value = Decimal::from_str(per_point.trim())
        .map_err(|_| format!("points value {per_point:?} is not a decimal"))?;
    let mut worth = Decimal::from(points)
        .checked_mul(per_point_value)
        .ok_or_else(|| "the liability's worth is too large to compute".to_owned())?
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    worth.rescale(2);
    let sign = if worth.is_sign_negative() && !worth.is_zero() {
        "-"
    } else {
        ""
    };
    let digits = worth.abs().to_string();
    let (whole, cents) = digits.split_once('.').unwrap_or((&digits, "00"));
    let currency = currency.map(|code| format!(" {code}")).unwrap_or_default();
    Ok(format!("{sign}{}.{cents}{currency}", group_digits(whole)))
}

/// An integer with thousands separators: `-1,234,567`.
fn grouped(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}", group_digits(&value.unsigned_abs().to_string()))
}

fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A short number for chart labels, at most five characters: `1,234`, `12.3k`, `123k`, `4.5M`.
fn compact(value: i128) -> String {
    let magnitude = value.unsigned_abs();
    // A unit starts where the smaller one would round to 1,000 of it.
    let (unit, suffix) = match magnitude {
        0..10_000 => return grouped(value),
        10_000..999_500 => (1_000, "k"),
        999_500..999_500_000 => (1_000_000, "M"),
        _ => (1_000_000_000, "G"),
    };
    let sign = if value < 0 { "-" } else { "" };
    let tenths = (magnitude * 10 + unit / 2) / unit;
    if tenths < 1_000 {
        format!("{sign}{}.{}{suffix}", tenths / 10, tenths % 10)
    } else {
        let units = (magnitude + unit / 2) / unit;
        format!("{sign}{}{suffix}", group_digits(&units.to_string()))
    }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    let noun = if count == 1 { one } else { many };
    format!("{} {noun}", grouped(count.into()))
}

/// A period label read for people: `2026-11` is November 2026 (or Nov 2026 on an axis),
/// `2026-Q4` is Q4 2026, `2026` stays 2026. Anything else is shown as it is.
enum PeriodLabel<'a> {
    Month { year: &'a str, month: usize },
    Quarter { year: &'a str, quarter: u8 },
    Year(&'a str),
    Other(&'a str),
}

/// English month names (also the message templates').
pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl<'a> PeriodLabel<'a> {
    fn parse(label: &'a str) -> Self {
        let is_year = |text: &str| text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit());
        match label.split_once('-') {
            None if is_year(label) => Self::Year(label),
            Some((year, rest)) if is_year(year) => match rest.strip_prefix('Q') {
                Some(quarter) => match quarter.parse() {
                    Ok(quarter @ 1..=4) => Self::Quarter { year, quarter },
                    _ => Self::Other(label),
                },
                None => match rest.parse() {
                    Ok(month @ 1..=12) if rest.len() == 2 => Self::Month { year, month },
                    _ => Self::Other(label),
                },
            },
            _ => Self::Other(label),
        }
    }

    fn long(&self) -> String {
        match *self {
            Self::Month { year, month } => format!("{} {year}", MONTHS[month - 1]),
            _ => self.short(),
        }
    }

    fn short(&self) -> String {
        match *self {
            Self::Month { year, month } => format!("{} {year}", &MONTHS[month - 1][..3]),
            Self::Quarter { year, quarter } => format!("Q{quarter} {year}"),
            Self::Year(year) | Self::Other(year) => year.to_owned(),
        }
    }
}

fn charts(report: &Report) -> String {
    let periods: Vec<String> = report
        .history
        .iter()
        .map(|point| PeriodLabel::parse(&point.period).short())
        .collect();
    let rates: Vec<Option<i128>> = report
        .history
        .iter()
        .map(|point| rate_in_tenths(point.active, point.enrolled))
        .collect();
    // The rate axis always reaches 100%, so a flat 40% reads as 40% and not as the top.
    let rate_scale = Scale::covering(rates.iter().flatten().copied(), 1_000);
    let issued: Vec<Option<i128>> = report
        .history
        .iter()
        .map(|point| Some(point.issued.into()))
        .collect();
    let liability: Vec<Option<i128>> = report
        .history
        .iter()
        .map(|point| Some(point.liability.into()))
        .collect();
    let points_scale = Scale::covering(issued.iter().chain(&liability).flatten().copied(), 1);
    let mut figures = vec![
        line_chart(
            "Active rate over time",
            "active ÷ enrolled",
            &periods,
            &[Series {
                name: "active rate",
                values: rates,
            }],
            &rate_scale,
            PERCENT,
        ),
        bar_chart(
            "Login days per participant",
            "distinct login days in the period",
            "participants",
            &login_day_bars(&report.login_day_distribution),
        ),
        line_chart(
            "Points issued and liability over time",
            "points",
            &periods,
            &[
                Series {
                    name: "issued",
                    values: issued,
                },
                Series {
                    name: "liability",
                    values: liability,
                },
            ],
            &points_scale,
            COUNT,
        ),
    ];
    if !report.segments.is_empty() {
        let bars: Vec<Bar> = report
            .segments
            .iter()
            .map(|(segment, &count)| Bar {
                label: segment.clone(),
                value: count,
            })
            .collect();
        figures.push(horizontal_bar_chart(
            "Participants per segment",
            "participants",
            &bars,
        ));
    }
    format!(
        "<h2>Trends</h2>\n<section class=\"charts\">\n{}</section>\n",
        figures.concat()
    )
}

/// At most this many bars in the login-day chart: a month has one per day count (0 to 31);
/// a quarter or a year groups the day counts in ranges.
const MAX_LOGIN_DAY_BARS: usize = 32;
/// The most ranges a quarter or a year is grouped in, so their wider labels stay apart.
const MAX_LOGIN_DAY_RANGES: usize = 16;

/// The login-day distribution as bars: one per day count when they fit; otherwise zero days
/// alone (the non-users) and the other counts in ranges of a week, two weeks or 30 days.
fn login_day_bars(distribution: &[u64]) -> Vec<Bar> {
    if distribution.len() <= MAX_LOGIN_DAY_BARS {
        return distribution
            .iter()
            .enumerate()
            .map(|(days, &participants)| Bar {
                label: days.to_string(),
                value: participants,
            })
            .collect();
    }
    let most_days = distribution.len() - 1;
    let width = [7, 14, 30]
        .into_iter()
        .find(|width| most_days.div_ceil(*width) <= MAX_LOGIN_DAY_RANGES)
        .unwrap_or_else(|| most_days.div_ceil(MAX_LOGIN_DAY_RANGES));
    let ranges = distribution[1..]
        .chunks(width)
        .enumerate()
        .map(|(index, chunk)| {
            let first = 1 + index * width;
            Bar {
                label: format!("{first}–{}", first + chunk.len() - 1),
                value: chunk
                    .iter()
                    .fold(0, |total: u64, &count| total.saturating_add(count)),
            }
        });
    let zero = Bar {
        label: "0".to_owned(),
        value: distribution[0],
    };
    std::iter::once(zero).chain(ranges).collect()
}

/// A value axis from `low` to `high` in steps of `step` (a 1, 2, 2.5 or 5 times a power of
/// ten). Zero is always on the axis and `high > low`, so positions never divide by zero.
#[derive(Debug, PartialEq)]
struct Scale {
    low: i128,
    high: i128,
    step: i128,
}

impl Scale {
    /// About this many steps from bottom to top.
    const STEPS: i128 = 4;

    /// A scale that shows every value and reaches at least `at_least` (at least 1).
    fn covering(values: impl IntoIterator<Item = i128>, at_least: i128) -> Self {
        let (mut low, mut high) = (0, at_least.max(1));
        for value in values {
            low = low.min(value);
            high = high.max(value);
        }
        let step = nice_step((high - low + Self::STEPS - 1) / Self::STEPS);
        Self {
            low: low.div_euclid(step) * step,
            high: (high + step - 1) / step * step,
            step,
        }
    }

    /// Where `value` sits between the bottom (0.0) and the top (1.0) of the axis.
    fn fraction(&self, value: i128) -> f64 {
        (value - self.low) as f64 / (self.high - self.low) as f64
    }

    fn ticks(&self) -> impl Iterator<Item = i128> + '_ {
        (0..=(self.high - self.low) / self.step).map(|index| self.low + index * self.step)
    }
}

/// The smallest round step (1, 2, 2.5 or 5 times a power of ten; 2.5 only from 25 up, so steps
/// stay whole) that is at least `least`.
fn nice_step(least: i128) -> i128 {
    let least = least.max(1);
    let mut magnitude = 1;
    while magnitude * 10 <= least {
        magnitude *= 10;
    }
    // In tenths of the magnitude; ten magnitudes always reach `least`.
    [10, 20, 25, 50]
        .into_iter()
        .map(|tenths| tenths * magnitude)
        .filter(|tenths| tenths % 10 == 0)
        .map(|tenths| tenths / 10)
        .find(|&step| step >= least)
        .unwrap_or(10 * magnitude)
}

/// The drawing area of a chart inside its margins, in SVG units.
struct Plot {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_TOP: f64 = 32.0;
const MARGIN_BOTTOM: f64 = 52.0;

impl Plot {
    fn inside(width: f64, height: f64) -> Self {
        Self {
            left: MARGIN_LEFT,
            right: width - MARGIN_RIGHT,
            top: MARGIN_TOP,
            bottom: height - MARGIN_BOTTOM,
        }
    }

    fn y(&self, scale: &Scale, value: i128) -> f64 {
        self.bottom - scale.fraction(value) * (self.bottom - self.top)
    }
}

/// How a chart writes its values: `short` on the chart, `exact` in the tooltips.
#[derive(Clone, Copy)]
struct Numbers {
    short: fn(i128) -> String,
    exact: fn(i128) -> String,
}

const PERCENT: Numbers = Numbers {
    short: percent,
    exact: percent,
};

const COUNT: Numbers = Numbers {
    short: compact,
    exact: grouped,
};

struct Series<'a> {
    name: &'a str,
    /// One per x label; `None` leaves a gap (a period with nobody enrolled has no rate).
    values: Vec<Option<i128>>,
}

/// A line chart with one line per series (at most two: they are styled `line-0`, `line-1`),
/// each point labelled with its value, and a legend when there is more than one series.
fn line_chart(
    title: &str,
    y_title: &str,
    x_labels: &[String],
    series: &[Series],
    scale: &Scale,
    numbers: Numbers,
) -> String {
    if x_labels.is_empty() {
        return empty_chart(title, "No history yet: the first close starts it.");
    }
    let plot = Plot::inside(CHART_WIDTH, CHART_HEIGHT);
    // Points keep clear of the axes; a single point sits in the middle.
    let inset = 32.0;
    let x = |index: usize| match x_labels.len() {
        1 => (plot.left + plot.right) / 2.0,
        count => {
            plot.left
                + inset
                + (plot.right - plot.left - 2.0 * inset) * index as f64 / (count - 1) as f64
        }
    };
    let mut svg = value_axis(scale, &plot, numbers, y_title);
    for (index, label) in x_labels.iter().enumerate() {
        svg += &format!(
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x(index),
            plot.bottom + 18.0,
            escape(label)
        );
    }
    for (number, line) in series.iter().enumerate() {
        let known = || {
            line.values
                .iter()
                .enumerate()
                .filter_map(|(index, value)| value.map(|value| (index, value)))
        };
        // A missing value breaks the line: each run of known values is one polyline.
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut previous: Option<usize> = None;
        for (index, value) in known() {
            let point = format!("{:.1},{:.1}", x(index), plot.y(scale, value));
            match runs.last_mut() {
                Some(run) if previous.map(|before| before + 1) == Some(index) => run.push(point),
                _ => runs.push(vec![point]),
            }
            previous = Some(index);
        }
        for run in runs {
            svg += &format!(
                "<polyline class=\"line-{number}\" points=\"{}\"/>\n",
                run.join(" ")
            );
        }
        // The second series labels its points below them, so the two sets of labels part.
        let label_offset = if number == 0 { -9.0 } else { 18.0 };
        for (index, value) in known() {
            let (cx, cy) = (x(index), plot.y(scale, value));
            svg += &format!(
                "<circle class=\"dot-{number}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\"><title>{}: {}</title></circle>\n\
                 <text class=\"value-label\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                escape(&x_labels[index]),
                escape(&(numbers.exact)(value)),
                cy + label_offset,
                escape(&(numbers.short)(value))
            );
        }
    }
    if series.len() > 1 {
        svg += &legend(series, &plot);
    }
    figure(title, CHART_WIDTH, CHART_HEIGHT, &svg)
}

fn legend(series: &[Series], plot: &Plot) -> String {
    let mut left = plot.right - 110.0 * series.len() as f64;
    let mut svg = String::new();
    for (number, line) in series.iter().enumerate() {
        svg += &format!(
            "<rect class=\"swatch-{number}\" x=\"{left:.1}\" y=\"8\" width=\"14\" height=\"10\" rx=\"2\"/>\
             <text x=\"{:.1}\" y=\"17\">{}</text>\n",
            left + 20.0,
            escape(line.name)
        );
        left += 110.0;
    }
    svg
}

/// Horizontal grid lines with their values on the left, the zero line, and the axis title.
fn value_axis(scale: &Scale, plot: &Plot, numbers: Numbers, title: &str) -> String {
    let mut svg = String::new();
    for tick in scale.ticks() {
        let y = plot.y(scale, tick);
        let class = if tick == 0 { "axis" } else { "grid" };
        svg += &format!(
            "<line class=\"{class}\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            plot.left,
            plot.right,
            plot.left - 8.0,
            y + 4.0,
            escape(&(numbers.short)(tick))
        );
    }
    svg += &format!(
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        (plot.top + plot.bottom) / 2.0,
        escape(title)
    );
    svg
}

struct Bar {
    label: String,
    value: u64,
}

/// Vertical bars with their values on top and their labels below; the chart widens with the
/// number of bars and the length of their labels rather than crowding them.
fn bar_chart(title: &str, x_title: &str, y_title: &str, bars: &[Bar]) -> String {
    if bars.is_empty() {
        return empty_chart(title, "No data for this period.");
    }
    let longest_label = bars
        .iter()
        .map(|bar| bar.label.chars().count())
        .max()
        .unwrap_or(0);
    // Room for a five-character value label, or the longest bar label.
    let slot = (longest_label as f64 * 7.0 + 10.0).max(34.0);
    let width = (MARGIN_LEFT + slot * bars.len() as f64 + MARGIN_RIGHT).max(360.0);
    let plot = Plot::inside(width, CHART_HEIGHT);
    let slot = (plot.right - plot.left) / bars.len() as f64;
    let scale = Scale::covering(bars.iter().map(|bar| i128::from(bar.value)), 1);
    let mut svg = value_axis(&scale, &plot, COUNT, y_title);
    for (index, bar) in bars.iter().enumerate() {
        let center = plot.left + slot * (index as f64 + 0.5);
        let top = plot.y(&scale, bar.value.into());
        svg += &format!(
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>\n\
             <text class=\"value-label\" x=\"{center:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text class=\"tick\" x=\"{center:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            center - slot * 0.35,
            slot * 0.7,
            plot.bottom - top,
            escape(&bar.label),
            (COUNT.exact)(bar.value.into()),
            top - 5.0,
            (COUNT.short)(bar.value.into()),
            plot.bottom + 16.0,
            escape(&bar.label)
        );
    }
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        (plot.left + plot.right) / 2.0,
        CHART_HEIGHT - 12.0,
        escape(x_title)
    );
    figure(title, width, CHART_HEIGHT, &svg)
}

/// Labels longer than this are cut (with an ellipsis) in horizontal bar charts.
const MAX_LABEL_CHARS: usize = 28;

/// Horizontal bars, for categories whose names are too long to sit under a vertical bar.
fn horizontal_bar_chart(title: &str, x_title: &str, bars: &[Bar]) -> String {
    let row = 26.0;
    let label_chars = bars
        .iter()
        .map(|bar| bar.label.chars().count().min(MAX_LABEL_CHARS + 1))
        .max()
        .unwrap_or(0);
    let left = (label_chars as f64 * 7.0 + 16.0).max(80.0);
    let (right, top) = (CHART_WIDTH - 64.0, 8.0);
    let bottom = top + row * bars.len() as f64;
    let height = bottom + 48.0;
    let scale = Scale::covering(bars.iter().map(|bar| i128::from(bar.value)), 1);
    let x = |value: i128| left + scale.fraction(value) * (right - left);
    let mut svg = String::new();
    for tick in scale.ticks() {
        svg += &format!(
            "<line class=\"{}\" x1=\"{:.1}\" y1=\"{top:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            if tick == 0 { "axis" } else { "grid" },
            x(tick),
            x(tick),
            x(tick),
            bottom + 16.0,
            compact(tick)
        );
    }
    for (index, bar) in bars.iter().enumerate() {
        let y = top + row * index as f64;
        let shown: String = if bar.label.chars().count() > MAX_LABEL_CHARS {
            bar.label
                .chars()
                .take(MAX_LABEL_CHARS)
                .chain(['…'])
                .collect()
        } else {
            bar.label.clone()
        };
        let end = x(bar.value.into());
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}<title>{}</title></text>\
             <rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <text class=\"value-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            left - 8.0,
            y + row / 2.0 + 4.0,
            escape(&shown),
            escape(&bar.label),
            x(0),
            y + 4.0,
            end - x(0),
            row - 8.0,
            end + 6.0,
            y + row / 2.0 + 4.0,
            grouped(bar.value.into())
        );
    }
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        (left + right) / 2.0,
        height - 10.0,
        escape(x_title)
    );
    figure(title, CHART_WIDTH, height, &svg)
}

fn figure(title: &str, width: f64, height: f64, svg: &str) -> String {
    let title = escape(title);
    format!(
        "<figure class=\"chart\"><figcaption>{title}</figcaption>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"{title}\">\n\
         {svg}</svg></figure>\n"
    )
}

fn empty_chart(title: &str, message: &str) -> String {
    format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption><p class=\"empty\">{}</p></figure>\n",
        escape(title),
        escape(message)
    )
}

/// A column of a table: its heading and whether its cells are numbers (aligned right).
struct Column {
    heading: &'static str,
    numeric: bool,
}

/// A table whose cells are HTML already: callers escape what they put in.
fn table(columns: &[Column], rows: &[Vec<String>]) -> String {
    let class = |column: &Column| if column.numeric { " class=\"num\"" } else { "" };
    let head: String = columns
        .iter()
        .map(|column| format!("<th{}>{}</th>", class(column), escape(column.heading)))
        .collect();
    let body: String = rows
        .iter()
        .map(|cells| {
            let cells: String = columns
                .iter()
                .zip(cells)
                .map(|(column, cell)| format!("<td{}>{cell}</td>", class(column)))
                .collect();
            format!("<tr>{cells}</tr>\n")
        })
        .collect();
    format!("<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n")
}

fn boards(boards: &[BoardReport]) -> String {
    let cards: String = if boards.is_empty() {
        "<p class=\"empty\">No leaderboards in this period.</p>\n".to_owned()
    } else {
        boards.iter().map(board).collect()
    };
    format!("<h2>Leaderboards</h2>\n<section>\n{cards}</section>\n")
}

fn board(board: &BoardReport) -> String {
    let mut about = format!("{} · ranks {}", escape(&board.metric), escape(&board.ranks));
    if let Some(scope) = &board.within {
        about += &format!(" within {}", escape(scope));
    }
    about += &format!(" · {}", escape(&PeriodLabel::parse(&board.period).long()));
    let mut sharing: HashMap<u32, usize> = HashMap::new();
    for row in &board.rows {
        *sharing.entry(row.rank).or_default() += 1;
    }
    let rows: Vec<Vec<String>> = board
        .rows
        .iter()
        .map(|row| {
            let tie = if sharing[&row.rank] > 1 {
                "<span class=\"tie\">tied</span>"
            } else {
                ""
            };
            vec![
                format!("{}{tie}", row.rank),
                escape(&row.name),
                escape(&row.score),
                row.award.as_deref().map(escape).unwrap_or_default(),
            ]
        })
        .collect();
    let ranking = if rows.is_empty() {
        "<p class=\"empty\">Nobody ranked in this period.</p>\n".to_owned()
    } else {
        table(
            &[
                Column {
                    heading: "Rank",
                    numeric: true,
                },
                Column {
                    heading: "Name",
                    numeric: false,
                },
                Column {
                    heading: "Score",
                    numeric: true,
                },
                Column {
                    heading: "Award",
                    numeric: false,
                },
            ],
            &rows,
        )
    };
    format!(
        "<div class=\"card\">\n<h3>{}</h3>\n<p class=\"about\">{about} · <code>{}</code></p>\n{ranking}</div>\n",
        escape(&board.title),
        escape(&board.board)
    )
}

fn drawings(report: &Report) -> String {
    let cards: String = if report.drawings.is_empty() {
        "<p class=\"empty\">No drawings in this period.</p>\n".to_owned()
    } else {
        report
            .drawings
            .iter()
            .map(|drawing| drawing_card(drawing, &report.program, &report.period))
            .collect()
    };
    format!("<h2>Drawings</h2>\n<section>\n{cards}</section>\n")
}

fn drawing_card(drawing: &DrawingReport, program: &str, period: &str) -> String {
    let seed = match &drawing.seed {
        Some(seed) => format!("<code class=\"hash\">{}</code>", escape(seed)),
        None => "<span class=\"empty\">not revealed yet</span>".to_owned(),
    };
    let facts = [
        ("Entrants", grouped(drawing.entrants.into())),
        ("Tickets", grouped(drawing.tickets.into())),
        (
            "Entrants SHA-256",
            format!(
                "<code class=\"hash\">{}</code>",
                escape(&drawing.entrants_sha256)
            ),
        ),
        (
            "Seed commitment",
            format!(
                "<code class=\"hash\">{}</code>",
                escape(&drawing.seed_commitment)
            ),
        ),
        ("Seed", seed),
    ]
    .map(|(term, value)| format!("<dt>{term}</dt><dd>{value}</dd>"))
    .concat();
    let winners: Vec<Vec<String>> = drawing
        .winners
        .iter()
        .map(|winner| vec![escape(&winner.prize), escape(&winner.participant)])
        .collect();
    let winners = if winners.is_empty() {
        "<p class=\"empty\">No winners drawn.</p>\n".to_owned()
    } else {
        table(
            &[
                Column {
                    heading: "Prize",
                    numeric: false,
                },
                Column {
                    heading: "Winner",
                    numeric: false,
                },
            ],
            &winners,
        )
    };
    let verify = format!(
        "carrot draw verify {} {} {}",
        program, drawing.drawing, period
    );
    format!(
        "<div class=\"card\">\n<h3>{}</h3>\n<dl class=\"facts\">{facts}</dl>\n{winners}<p class=\"about\">Verify with <code>{}</code></p>\n</div>\n",
        escape(&drawing.title),
        escape(&verify)
    )
}

fn notices(notices: &NoticeSummary) -> String {
    let was = |count: u64| if count == 1 { "was" } else { "were" };
    let sentences = [
        format!(
            "{} had fewer than the required logins; their managers got {}.",
            plural(notices.below_threshold, "rep", "reps"),
            plural(notices.manager_emails, "email", "emails")
        ),
        format!(
            "{} had no login at all; they are on the zero-logins list.",
            plural(notices.zero_logins, "participant", "participants"),
        ),
        format!(
            "{} got a first notice for a month without logins and {} on the to-be-suspended list.",
            plural(notices.first_strikes, "participant", "participants"),
            if notices.first_strikes == 1 {
                "is"
            } else {
                "are"
            }
        ),
        format!(
            "{} {} suspended by this close.",
            plural(notices.suspended, "account", "accounts"),
            was(notices.suspended)
        ),
        format!(
            "{} {} terminated by this close.",
            plural(notices.terminated, "account", "accounts"),
            was(notices.terminated)
        ),
    ]
    .map(|sentence| format!("<li>{}</li>\n", escape(&sentence)))
    .concat();
    format!("<h2>Notices</h2>\n<section class=\"card\">\n<ul>\n{sentences}</ul>\n</section>\n")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../events/admin/report-sample.json");

    fn sample() -> Report {
        serde_json::from_str(SAMPLE).expect("the sample report parses")
    }

    fn empty() -> Report {
        Report {
            program: "acme".into(),
            period: "2026-Q4".into(),
            kind: PeriodKind::Quarter,
            starts_on: "2026-10-01".into(),
            ends_on: "2026-12-31".into(),
            time_zone: "Europe/Stockholm".into(),
            config_version: 1,
            closed_at: "2027-01-01T00:05:00Z".into(),
            points_value: None,
            currency: None,
            participation: Participation {
                enrolled: 0,
                active: 0,
                suspended: 0,
                terminated: 0,
                new: 0,
            },
            login_day_distribution: Vec::new(),
            points: PointsSummary {
                issued: 0,
                reversed: 0,
                bonuses: 0,
                liability: 0,
                pending: 0,
            },
            history: Vec::new(),
            boards: Vec::new(),
            drawings: Vec::new(),
            notices: NoticeSummary {
                below_threshold: 0,
                manager_emails: 0,
                zero_logins: 0,
                first_strikes: 0,
                suspended: 0,
                terminated: 0,
            },
            segments: BTreeMap::new(),
        }
    }

    /// No NaN or infinity reached a coordinate, and the page is whole.
    fn assert_sound(page: &str) {
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.trim_end().ends_with("</html>"));
        for bad in ["NaN", "inf", "<script"] {
            assert!(!page.contains(bad), "the page contains {bad:?}");
        }
        assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    }

    #[test]
    fn the_sample_round_trips_with_the_documented_field_names() {
        let report = sample();
        assert_eq!(report.kind, PeriodKind::Month);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["kind"], "month");
        assert_eq!(json["participation"]["new"], 23);
        assert_eq!(
            serde_json::from_value::<Report>(json).unwrap(),
            report,
            "serialising and parsing again changes nothing"
        );
        assert_eq!(
            serde_json::to_value(PeriodKind::Quarter).unwrap(),
            "quarter"
        );
    }

    #[test]
    fn renders_the_sample() {
        let page = render_html(&sample());
        assert_sound(&page);
        assert!(page.contains("<h1>acme</h1>"));
        assert!(page.contains("Monthly report · November 2026"));
        // Closed at 00:05 UTC is 01:05 in Stockholm, still winter time.
        assert!(page.contains("1 December 2026, 01:05 CET"), "{page}");
        assert!(page.contains("Config version</dt><dd>3"));
        // 318 of 412 is 77.18...%.
        assert!(page.contains(">77.2%<"));
        // 1,263,480 points at 0.10 SEK.
        assert!(page.contains("worth 126,348.00 SEK · 42,360 pending"));
        assert!(page.contains("net of 3,120 reversed"));
        assert!(page.contains("23 new · 6 suspended · 2 terminated, not counted"));
        // Three line charts' worth of history and a bar for each of 0..=30 login days.
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains(">Sep 2026<") && page.contains(">Nov 2026<"));
        assert_eq!(page.matches("class=\"bar\"").count(), 31);
        assert!(page.contains("<title>0: 99</title>"));
        // Points are shortened on the chart and exact in the tooltip.
        assert!(page.contains("<title>Nov 2026: 1,263,480</title>"));
        assert!(page.contains(">1.3M</text>"));
        // Both boards; the tie for third shows twice.
        assert!(page.contains("Top reps of the month"));
        assert!(page.contains("ranks locations within nordic-dealer"));
        assert_eq!(page.matches("3<span class=\"tie\">tied</span>").count(), 2);
        assert!(page.contains("<td class=\"num\">612.5</td>"));
        // The drawing and how to check it.
        assert!(page.contains("<dt>Entrants</dt><dd>112</dd>"));
        assert!(page.contains("carrot draw verify acme monthly-login-drawing 2026-11"));
        assert!(page.contains("Weekend in Vegas"));
        assert!(page.contains(
            "101 reps had fewer than the required logins; their managers got 58 emails."
        ));
        assert!(page.contains("6 accounts were suspended by this close."));
        assert!(page.contains("2 accounts were terminated by this close."));
    }

    #[test]
    fn every_text_from_the_model_is_escaped() {
        let hostile = "<script>alert('x')</script>";
        let mut report = sample();
        report.program = hostile.into();
        report.period = hostile.into();
        report.time_zone = hostile.into();
        report.closed_at = hostile.into();
        report.points_value = Some(hostile.into());
        report.history[0].period = hostile.into();
        report.boards[0].title = hostile.into();
        report.boards[0].within = Some(hostile.into());
        report.boards[0].rows[0].name = hostile.into();
        report.boards[0].rows[0].score = hostile.into();
        report.boards[0].rows[0].award = Some(hostile.into());
        report.drawings[0].title = hostile.into();
        report.drawings[0].seed = Some(hostile.into());
        report.drawings[0].winners[0].participant = hostile.into();
        report.segments.insert(hostile.into(), 7);
        let page = render_html(&report);
        assert_sound(&page);
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        // The points value that is not a number says so, escaped too.
        assert!(page.contains("points value &quot;&lt;script&gt;"));
    }

    #[test]
    fn an_empty_report_renders_without_charts_or_numbers_it_does_not_have() {
        let page = render_html(&empty());
        assert_sound(&page);
        assert!(page.contains("Quarterly report · Q4 2026"));
        assert!(
            page.contains("<div class=\"value\">–</div>"),
            "no rate of nobody"
        );
        assert!(page.contains("No history yet"));
        assert!(page.contains("No leaderboards in this period."));
        assert!(page.contains("No drawings in this period."));
        assert!(!page.contains("<svg"));
        assert!(!page.contains("Participants per segment"));
    }

    #[test]
    fn zero_enrolled_periods_leave_a_gap_in_the_rate_line() {
        let mut report = sample();
        report.history[1].enrolled = 0;
        report.history[1].active = 0;
        let page = render_html(&report);
        assert_sound(&page);
        // The rate chart draws two one-point runs; the points chart still has one line each.
        assert_eq!(page.matches("class=\"line-0\"").count(), 3);
        assert_eq!(page.matches("class=\"dot-0\"").count(), 5);
    }

    #[test]
    fn boards_and_drawings_without_rows_say_so() {
        let mut report = sample();
        report.boards[0].rows.clear();
        report.drawings[0].winners.clear();
        report.drawings[0].seed = None;
        let page = render_html(&report);
        assert!(page.contains("Nobody ranked in this period."));
        assert!(page.contains("No winners drawn."));
        assert!(page.contains("not revealed yet"));
    }

    #[test]
    fn segments_get_a_chart_with_long_names_cut() {
        let mut report = sample();
        report.segments.insert("one-time buyers".into(), 120);
        report.segments.insert("a".repeat(40), 3);
        let page = render_html(&report);
        assert_sound(&page);
        assert!(page.contains("Participants per segment"));
        assert!(page.contains(&format!(
            ">{}…<title>{}</title>",
            "a".repeat(28),
            "a".repeat(40)
        )));
    }

    #[test]
    fn scales_never_divide_by_zero() {
        let all_zero = Scale::covering([0, 0], 1);
        assert_eq!(
            all_zero,
            Scale {
                low: 0,
                high: 1,
                step: 1
            }
        );
        assert_eq!(all_zero.fraction(0), 0.0);
        let nothing = Scale::covering([], 0);
        assert!(nothing.high > nothing.low);
        // Negative values extend the axis below zero on whole steps.
        let mixed = Scale::covering([-5, 12_345], 1);
        assert_eq!(
            mixed,
            Scale {
                low: -5_000,
                high: 15_000,
                step: 5_000
            }
        );
        assert_eq!(
            mixed.ticks().collect::<Vec<_>>(),
            [-5_000, 0, 5_000, 10_000, 15_000]
        );
        // The rate axis reaches 100% in quarters.
        let rate = Scale::covering([400], 1_000);
        assert_eq!(
            rate.ticks().map(percent).collect::<Vec<_>>(),
            ["0.0%", "25.0%", "50.0%", "75.0%", "100.0%"]
        );

        let bars = [0, 0, 0].map(|value| Bar {
            label: "0".into(),
            value,
        });
        let chart = bar_chart("zeros", "days", "participants", &bars);
        assert!(!chart.contains("NaN") && !chart.contains("inf"));
        assert!(chart.contains("height=\"0.0\""));
        let segments = horizontal_bar_chart("zeros", "participants", &bars);
        assert!(!segments.contains("NaN") && !segments.contains("inf"));
    }

    #[test]
    fn round_steps() {
        let steps: Vec<i128> = [0, 1, 2, 3, 6, 11, 24, 26, 300, 3_088]
            .map(nice_step)
            .into();
        assert_eq!(steps, [1, 1, 2, 5, 10, 20, 25, 50, 500, 5_000]);
    }

    #[test]
    fn a_year_groups_login_days_in_ranges() {
        let mut distribution = vec![1; 367];
        distribution[0] = 50;
        let bars = login_day_bars(&distribution);
        // Zero alone, then 1-30, 31-60, ..., 361-366.
        assert_eq!(bars.len(), 14);
        assert_eq!((bars[0].label.as_str(), bars[0].value), ("0", 50));
        assert_eq!((bars[1].label.as_str(), bars[1].value), ("1–30", 30));
        assert_eq!((bars[13].label.as_str(), bars[13].value), ("361–366", 6));
        let quarter = login_day_bars(&[1; 93]);
        assert_eq!(quarter[1].label, "1–7");
        assert_eq!(quarter.len(), 15);
        assert_eq!(login_day_bars(&[2; 31]).len(), 31);
    }

    #[test]
    fn rates_money_and_numbers_read_well() {
        assert_eq!(rate_in_tenths(1, 3).map(percent).as_deref(), Some("33.3%"));
        assert_eq!(rate_in_tenths(2, 3).map(percent).as_deref(), Some("66.7%"));
        assert_eq!(
            rate_in_tenths(1, 2_000).map(percent).as_deref(),
            Some("0.1%")
        );
        assert_eq!(rate_in_tenths(5, 0), None);
        assert_eq!(
            money(1_234_567, "0.10", Some("SEK")).unwrap(),
            "123,456.70 SEK"
        );
        assert_eq!(
            money(5, "0.001", None).unwrap(),
            "0.01",
            "half a cent rounds up"
        );
        assert_eq!(money(-5, "0.001", None).unwrap(), "-0.01");
        assert_eq!(money(0, "0.25", Some("EUR")).unwrap(), "0.00 EUR");
        assert!(
            money(1, "ten", None)
                .unwrap_err()
                .contains("\"ten\" is not a decimal")
        );
        assert_eq!(grouped(-1_234_567), "-1,234,567");
        assert_eq!(grouped(999), "999");
        let compacted = [9_999, 12_345, 99_960, 123_456, 4_500_000, -25_000].map(compact);
        assert_eq!(
            compacted,
            ["9,999", "12.3k", "100k", "123k", "4.5M", "-25.0k"]
        );
    }

    #[test]
    fn period_labels() {
        let long = |label| PeriodLabel::parse(label).long();
        assert_eq!(long("2026-11"), "November 2026");
        assert_eq!(long("2026-Q4"), "Q4 2026");
        assert_eq!(long("2026"), "2026");
        assert_eq!(PeriodLabel::parse("2026-01").short(), "Jan 2026");
        for odd in ["2026-13", "2026-Q5", "2026-1", "26-11", "week 3"] {
            assert_eq!(long(odd), odd);
        }
    }

    #[test]
    fn notices_sent_counts_every_message() {
        assert_eq!(sample().notices.sent(), 101 + 58 + 31 + 6 + 2);
    }
}
