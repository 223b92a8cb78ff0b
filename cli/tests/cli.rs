//! The `carrot` binary as an operator runs it: validate and backtest on the sample files, and
//! diff and push against Carrot deployed on the local stack.

use carrot_local::deployment::{ApiClient, Deployment};
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::LocalStack;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SAMPLE: &str = include_str!("../../events/admin/program.yaml");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A file of this test run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Names are unique within the run (tests run in parallel); the extension picks the format.
fn scratch(name: &str, text: &str) -> Scratch {
    let path = std::env::temp_dir().join(format!("carrot-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    Scratch(path)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn carrot(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_carrot"))
        .args(args)
        .env_remove("CARROT_URL")
        .env_remove("CARROT_KEY_ID")
        .env_remove("CARROT_PROGRAM")
        .env_remove("CARROT_SECRET")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[test]
fn validate_summarises_the_sample_config() {
    let path = repo("events/admin/program.yaml");
    let run = carrot(&["validate", path.to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for expected in [
        "program acme (ACME Channel Stars), time zone Europe/Stockholm, locale sv-SE",
        "a point costs 0.10 SEK",
        "rules: 12 for 6 event types",
        "daily-login v1        5 points; caps: 1 time a day, 100 points a month",
        "december-sprint v1    ×2 on contract-volume, contract-count; from 2026-12-01T00:00:00+01:00 until 2026-12-24T00:00:00+01:00",
        "contract-points       2000000 points a month over contract-volume, contract-count (4 shards)",
        "expiry: at the end of the 24th month after the month earned",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing from\n{}",
            run.stdout
        );
    }
}

#[test]
fn validate_lists_every_error_with_its_path() {
    let broken = SAMPLE
        .replace("time_zone: Europe/Stockholm", "time_zone: Mars/Base")
        .replace("award: { points: 5 }", "award: { points: five }")
        .replace("per: week, points: 400", "per: fortnight, points: 400");
    let file = scratch("broken.yaml", &broken);
    let run = carrot(&["validate", file.path()], &[]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[0].starts_with("time_zone: unknown IANA time zone \"Mars/Base\""));
    assert!(
        lines[1].starts_with("rules[1].award.points: "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("rules[7].caps[0].per: "),
        "{}",
        lines[2]
    );
    assert!(lines[3].ends_with("broken.yaml: 3 errors"));
}

#[test]
fn unknown_commands_and_missing_options_are_usage_errors() {
    let run = carrot(&["frobnicate"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown command \"frobnicate\""));
    let run = carrot(&["backtest", "--config", "x.yaml"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("backtest needs --events"));
    let run = carrot(&["backtest", "--help"], &[]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("carrot backtest --config"));
}

#[test]
fn backtest_of_the_sample_history() {
    let (config, events, roster) = (
        repo("events/admin/program.yaml"),
        repo("events/backtest/history.jsonl"),
        repo("events/backtest/roster.csv"),
    );
    let args = [
        "backtest",
        "--config",
        config.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
    ];
    let run = carrot(&[&args[..], &["--json"]].concat(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["events"]["read"], 516);
    assert_eq!(report["events"]["replayed"], 514);
    let rejected: Vec<&Value> = report["events"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["line"])
        .collect();
    assert_eq!(rejected, [172, 344]);
    assert_eq!(
        report["roster"],
        json!({"listed": 18, "first_seen": 2, "rejected": []})
    );
    assert_eq!(
        report["outcomes"],
        json!({"awarded": 429, "duplicate": 1, "earned_nothing": 83, "reversed": 1})
    );
    let months: Vec<(&str, i64, i64)> = report["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let n = |k: &str| m[k].as_i64().unwrap();
            (m["month"].as_str().unwrap(), n("earned"), n("reversed"))
        })
        .collect();
    assert_eq!(
        months,
        [
            ("2026-09", -10, 0),
            ("2026-10", 17469, 0),
            ("2026-11", 12669, -95),
            ("2026-12", 35218, 0),
        ]
    );
    let net = |rule: &str| {
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == rule)
            .map(|r| r["net"].as_i64().unwrap())
    };
    // When the sample was made, these were checked against a reference computed from the
    // files alone, outside the engine.
    assert_eq!(net("first-login"), Some(2300));
    assert_eq!(net("welcome-quiz"), Some(1800));
    assert_eq!(net("contract-count"), Some(4975));
    assert_eq!(net("first-deal"), Some(5500));
    assert_eq!(net("seasoned-deals"), Some(1380));
    assert_eq!(net("lead-tip"), Some(787));
    assert_eq!(net("crm-late-penalty"), Some(-15));
    assert_eq!(net("contract-volume"), Some(39808));
    let bites = |rule: &str| {
        report["limits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rule"] == rule)
            .map(|l| {
                (
                    l["events"].as_i64().unwrap(),
                    l["withheld"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bites("contract-volume"), [(3, 3540)]);
    assert_eq!(bites("crm-on-time"), [(2, 4)]);
    assert_eq!(
        report["liability"],
        json!({"as_of": "2026-12-31T16:00:00Z", "day": "2026-12-31", "balance": 65251,
            "pending": 1547, "available": 63704, "expiring_within_90_days": 0, "expired": 0,
            "cost": {"amount": "6525.10", "currency": "SEK"}})
    );
    assert_eq!(report["top_earners"][0]["participant"], "rep-02");
    assert_eq!(report["top_earners"][0]["balance"], 22530);
    assert_eq!(report["top_earners"].as_array().unwrap().len(), 10);

    let text = carrot(&args, &[]);
    assert_eq!(text.code, 0);
    for expected in [
        "events: 516 read, 514 replayed, 0 received after the as-of time, 2 rejected",
        "  line 172: attributes.correct: must not exceed questions (10), got 12",
        "  total       512   65346       -95  65251",
        "liability at 2026-12-31: 6525.10 SEK",
    ] {
        assert!(
            text.stdout.contains(expected),
            "{expected:?} missing from\n{}",
            text.stdout
        );
    }
}

#[test]
fn backtest_reads_csv_events_and_a_json_lines_roster() {
    let config = repo("events/admin/program.yaml");
    // Columns in any order; no received_at column, so each event is received as it occurs.
    let events = scratch(
        "events.csv",
        "type,id,participant,occurred_at,attributes\n\
         contract.started,c-1,rep-a,2026-11-02T10:00:00+01:00,\"{\"\"contract_id\"\":\"\"c-1\"\",\"\"financed_volume\"\":\"\"25000\"\",\"\"currency\"\":\"\"SEK\"\"}\"\n\
         portal.login,l-1,rep-a,2026-11-02T08:00:00+01:00,\n\
         deal.registered,d-1,rep-b,2026-11-03T10:00:00+01:00,\"{\"\"deal_id\"\":\"\"d-1\"\"}\"\n\
         portal.login,l-2,rep-a,2026-11-03,\n",
    );
    let roster = scratch(
        "roster.jsonl",
        "{\"participant\": \"rep-a\", \"enrolled_at\": \"2020-01-01T00:00:00Z\", \"role\": \"sales_rep\", \"segment\": \"veterans\"}\n",
    );
    let run = carrot(
        &[
            "backtest",
            "--config",
            config.to_str().unwrap(),
            "--events",
            events.path(),
            "--roster",
            roster.path(),
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["events"]["rejected"][0]["line"], 5);
    // rep-a: first login 100 and daily login 5; the contract 25 for its volume and 50 for
    // itself, pending until Monday 9 November. rep-b is new, enrolled at the deal: their first
    // deal's 250 is half as much again in the fast start.
    let balances: Vec<(&str, i64)> = report["top_earners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["participant"].as_str().unwrap(),
                e["balance"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(balances, [("rep-b", 375), ("rep-a", 180)]);
    assert_eq!(report["liability"]["pending"], 75);
    assert_eq!(report["liability"]["cost"]["amount"], "55.50");
    let segments: Vec<(&Value, &Value)> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (&s["segment"], &s["net"]))
        .collect();
    assert_eq!(
        segments,
        [
            (&Value::Null, &json!(375)),
            (&json!("veterans"), &json!(180))
        ]
    );
}

/// The profile of events/admin/put_participant.json, as `PUT /v1/programs/acme/participants/rep-anna`
/// takes it: Swedish, with a manager.
fn anna() -> Scratch {
    let request: Value =
        serde_json::from_str(include_str!("../../events/admin/put_participant.json")).unwrap();
    scratch("rep-anna.json", request["body"].as_str().unwrap())
}

#[test]
fn preview_writes_a_page_with_the_email_its_text_and_the_sms() {
    let program = repo("events/admin/program.yaml");
    let participant = anna();
    let out = Scratch(
        std::env::temp_dir().join(format!("carrot-cli-{}-digest.html", std::process::id())),
    );
    let run = carrot(
        &[
            "preview",
            "digest",
            "--program",
            program.to_str().unwrap(),
            "--participant",
            participant.path(),
            "--out",
            out.path(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("digest in sv to anna.berg@nordic-dealer.example"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("subject: Anna, din vecka 47 i ACME Channel Stars: +120 poäng")
    );
    assert!(run.stdout.contains("GSM-7, 1 part"), "{}", run.stdout);
    let page = std::fs::read_to_string(&out.0).unwrap();
    assert!(page.contains("<h2 style=\"font-size:16px;margin:0 0 8px 0;\">Email</h2>"));
    assert!(
        page.contains("Här är din vecka 47 i ACME Channel Stars."),
        "the email"
    );
    assert!(
        page.contains("Ditt saldo: 1\u{a0}234 poäng"),
        "the plain text"
    );
    assert!(page.contains("Svara STOP för att avsluta."), "the SMS");
    assert!(!page.contains("<iframe") && !page.contains("<script"));

    // In English, with data of one's own.
    let data = scratch(
        "near-miss.json",
        r#"{"title": "Monthly login drawing", "have": 9, "need": 10, "missing": 1, "days_left": 2, "metric": "login_days"}"#,
    );
    let run = carrot(
        &[
            "preview",
            "near_miss.drawing",
            "--program",
            program.to_str().unwrap(),
            "--participant",
            participant.path(),
            "--locale",
            "en",
            "--data",
            data.path(),
            "--out",
            out.path(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("subject: Anna, 1 more login day and you're in the Monthly login drawing"),
        "{}",
        run.stdout
    );
}

#[test]
fn preview_writes_the_whole_email_for_the_manager() {
    let program = repo("events/admin/program.yaml");
    let participant = anna();
    let out = Scratch(
        std::env::temp_dir().join(format!("carrot-cli-{}-manager.eml", std::process::id())),
    );
    let run = carrot(
        &[
            "preview",
            "non_use.manager",
            "--program",
            program.to_str().unwrap(),
            "--participant",
            participant.path(),
            "--recipient",
            "manager",
            "--out",
            out.path(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let eml = std::fs::read_to_string(&out.0).unwrap();
    assert!(eml.starts_with("From: \"ACME Channel Stars\" <notifications@carrot.invalid>\r\n"));
    assert!(eml.contains("\r\nTo: <erik.lund@nordic-dealer.example>\r\n"));
    assert!(eml.contains("\r\nContent-Type: multipart/alternative;"));
    assert!(eml.contains("Content-Type: text/plain; charset=UTF-8"));
    assert!(eml.contains("Content-Type: text/html; charset=UTF-8"));
    assert!(
        !eml.contains("List-Unsubscribe"),
        "a notice has no unsubscribe link"
    );
    // The subject names the rep, in Swedish: an encoded word.
    assert!(eml.contains("\r\nSubject: =?UTF-8?B?"), "{eml}");
}

#[test]
fn preview_refuses_what_it_cannot_render() {
    let program = repo("events/admin/program.yaml");
    let participant = anna();
    let args = |kind: &str, participant: &str, extra: &[&str]| {
        let mut args = vec![
            "preview".to_owned(),
            kind.to_owned(),
            "--program".to_owned(),
            program.to_str().unwrap().to_owned(),
            "--participant".to_owned(),
            participant.to_owned(),
            "--out".to_owned(),
            std::env::temp_dir()
                .join(format!("carrot-cli-{}-refused.html", std::process::id()))
                .to_str()
                .unwrap()
                .to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let run_with = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        carrot(&args, &[])
    };
    let run = run_with(args("journey.nope", participant.path(), &[]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("unknown kind \"journey.nope\"; the kinds are non_use.notice")
    );
    let broken = scratch("rep-broken.json", r#"{"name": "Anna", "email": "nope"}"#);
    let run = run_with(args("digest", broken.path(), &[]));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("email: must be an e-mail address"),
        "{}",
        run.stdout
    );
    let run = run_with(args(
        "digest",
        participant.path(),
        &["--recipient", "manager"],
    ));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("digest is not sent to a manager"),
        "{}",
        run.stdout
    );
    let run = carrot(&["preview", "digest", "--program", "x.yaml"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("preview needs --participant"),
        "{}",
        run.stderr
    );
    let run = carrot(&["preview", "--help"], &[]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("carrot preview <kind>"));
}

/// Runs the binary off the async runtime that serves the local API.
async fn carrot_async(args: Vec<String>, env: Vec<(String, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        carrot(&args, &env)
    })
    .await
    .unwrap()
}

/// A deployment on the local stack, an admin key of program `acme`, and the environment that
/// points the CLI at both.
async fn deployment_with_admin(
    name: &str,
) -> anyhow::Result<(Deployment, ApiClient, Vec<(String, String)>)> {
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(
        stack,
        name,
        SqsEventSourceOptions::default(),
        Duration::from_millis(500),
    )
    .await?;
    let admin = deployment
        .create_key("acme-admin", "acme", &["admin"])
        .await?;
    let env = vec![
        ("CARROT_URL".to_owned(), deployment.api.base_url()),
        ("CARROT_KEY_ID".to_owned(), admin.key_id().to_owned()),
        ("CARROT_PROGRAM".to_owned(), admin.program().to_owned()),
        ("CARROT_SECRET".to_owned(), admin.secret().to_owned()),
    ];
    Ok((deployment, admin, env))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_and_push_against_the_local_stack() -> anyhow::Result<()> {
    let (deployment, admin, env) = deployment_with_admin("cli").await?;
    let run = |command: &str, text: &str, name: &str| {
        let file = scratch(name, text);
        let args = vec![command.to_owned(), file.path().to_owned()];
        let env = env.clone();
        async move {
            let run = carrot_async(args, env).await;
            drop(file);
            run
        }
    };

    let first = run("diff", SAMPLE, "v1.yaml").await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("nothing is deployed for this key's program yet")
    );
    assert!(first.stdout.contains("+ daily-login v1"));
    assert!(first.stdout.contains("+ contract-points\n"));

    let pushed = run("push", SAMPLE, "v1.yaml").await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);
    assert!(
        pushed
            .stdout
            .starts_with("stored acme version 1, in force from "),
        "{}",
        pushed.stdout
    );
    assert!(pushed.stdout.contains("(12 rules, 2 campaigns, 1 budget)"));

    let same = run("diff", SAMPLE, "v1.yaml").await;
    assert_eq!(same.code, 0, "{}", same.stdout);
    assert!(same.stdout.contains("deployed: acme version 1;"));
    assert!(same.stdout.ends_with("no changes\n"), "{}", same.stdout);

    // A rule changed without a higher version: diff flags it, the server refuses it.
    let unbumped = SAMPLE
        .replace("award: { points: 5 }", "award: { points: 6 }")
        .replace("name: ACME Channel Stars", "name: ACME Stars")
        .replace("points: 2000000", "points: 2500000");
    let diff = run("diff", &unbumped, "unbumped.yaml").await;
    assert_eq!(diff.code, 1, "{}", diff.stdout);
    for expected in [
        "  ~ daily-login v1 → v1: award: {\"points\":5} → {\"points\":6}  [refused: daily-login differs from its stored version 1: give it a version above 1]",
        "  ~ contract-points: points: 2000000 → 2500000",
        "  ~ name: \"ACME Channel Stars\" → \"ACME Stars\"",
        "rules[1].version: daily-login differs from its stored version 1",
    ] {
        assert!(
            diff.stdout.contains(expected),
            "{expected:?} missing from\n{}",
            diff.stdout
        );
    }
    let refused = run("push", &unbumped, "unbumped.yaml").await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stdout
            .contains("the server refused the configuration (400 The request is not valid)")
    );
    assert!(
        refused
            .stdout
            .contains("  rules[1].version: daily-login differs from its stored version 1")
    );

    let bumped = unbumped.replacen(
        "id: daily-login\n    version: 1",
        "id: daily-login\n    version: 2",
        1,
    );
    let diff = run("diff", &bumped, "bumped.yaml").await;
    assert_eq!(diff.code, 0, "{}", diff.stdout);
    assert!(diff.stdout.contains("  ~ daily-login v1 → v2: award:"));
    let pushed = run("push", &bumped, "bumped.yaml").await;
    assert_eq!(pushed.code, 0, "{}", pushed.stdout);
    assert!(pushed.stdout.starts_with("stored acme version 2"));

    // A wrong secret: the server's 401, and the secret never shows.
    let mut wrong = env.clone();
    let secret = wrong
        .iter_mut()
        .find(|(name, _)| name == "CARROT_SECRET")
        .expect("the secret is set");
    secret.1 = "not-the-secret-0123456789".into();
    let file = scratch("v1.yaml", SAMPLE);
    let denied = carrot_async(vec!["push".into(), file.path().into()], wrong).await;
    assert_eq!(denied.code, 1);
    assert!(
        denied
            .stdout
            .contains("(401 The request is not authenticated)")
    );
    for output in [&denied.stdout, &denied.stderr, &pushed.stdout, &diff.stdout] {
        assert!(!output.contains("not-the-secret") && !output.contains(admin.secret()));
    }
    deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_enrols_a_csv_file_in_chunks_and_reports_each_row() -> anyhow::Result<()> {
    let (deployment, _, env) = deployment_with_admin("cli-import").await?;
    // 1,001 good rows (two requests) with quoted names across lines, and one bad row.
    let mut csv = "participant,name,email,locale,time_zone,role,distributor,location,enrolled_at\n"
        .to_owned();
    for i in 0..1_001 {
        csv.push_str(&format!(
            "rep-{i},\"Rep, number\n{i}\",rep{i}@dealer.example,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,2026-03-01\n"
        ));
    }
    csv.push_str("rep-bad,Bad,not-an-address,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,\n");
    let file = scratch("reps.csv", &csv);
    let args = vec!["import".to_owned(), file.path().to_owned()];

    let first = carrot_async(args.clone(), env.clone()).await;
    assert_eq!(
        first.code, 1,
        "a row has errors: {}{}",
        first.stdout, first.stderr
    );
    assert!(
        first.stdout.contains("line 2: rep-0: created\n"),
        "{}",
        first.stdout
    );
    // The second request's rows are numbered by the file's lines: 2 per record.
    assert!(first.stdout.contains("line 2002: rep-1000: created\n"));
    assert!(
        first
            .stdout
            .contains("line 2004: rep-bad: error\n  email: ")
    );
    assert!(
        first
            .stdout
            .ends_with("1001 created, 0 updated, 0 unchanged, 1 with errors\n"),
        "{}",
        first.stdout
    );

    let again = carrot_async(args, env.clone()).await;
    assert!(
        again
            .stdout
            .ends_with("0 created, 0 updated, 1001 unchanged, 1 with errors\n"),
        "{}",
        again.stdout
    );
    let enrolled = carrot::ports::StatsReader::participant(&deployment.store, "acme", "rep-1000")
        .await?
        .expect("enrolled");
    assert_eq!(enrolled.profile.name, "Rep, number\n1000");
    assert_eq!(enrolled.enrolled_at, "2026-02-28T23:00:00Z");

    let json = scratch("reps.json", "{}");
    let refused = carrot_async(vec!["import".to_owned(), json.path().to_owned()], env).await;
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("expected a .csv or .jsonl file"));
    deployment.stop().await
}
