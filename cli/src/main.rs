//! `carrot`, the admin CLI: `validate`, `diff` and `push` a program configuration,
//! `backtest` it on historical events without touching any table, `draw verify` a prize
//! drawing, and `preview` a message template. The reference is docs/cli.md.

/// Prints a line to stdout. A closed pipe (`carrot backtest … | head`) is not an error: the
/// reader has what it wanted.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod api;
mod describe;
mod diff;
mod draw;
mod files;
mod import;
mod preview;
mod table;

use anyhow::Context;
use carrot::domain::envelope::parse_rfc3339;
use carrot::domain::error::FieldError;
use carrot::domain::program::Program;
use carrot::service::backtest::backtest;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The configuration is invalid, the server refused the request, or a drawing did not verify.
const REFUSED: u8 = 1;
/// The command could not run: bad arguments, an unreadable file, no connection.
const FAILED: u8 = 2;

const USAGE: &str = "\
carrot: administer a Carrot program

Usage:
  carrot validate <config.yaml>   check a program configuration, list every error
  carrot diff <config.yaml>       what pushing it would change in the deployed version
  carrot push <config.yaml>       store it as the program's next version
  carrot backtest --config <config.yaml> --events <history.jsonl|.csv>
                  [--roster <roster.csv|.jsonl>] [--as-of <RFC 3339>] [--json]
                                  replay historical events through it, locally
  carrot import <reps.csv|reps.jsonl>
                                  enrol participants in bulk, printing each row's outcome
  carrot draw verify <program> <drawing> <period>
  carrot draw verify --file <record.json>
                                  recompute a prize drawing and check its record
  carrot preview <kind> --program <config.yaml> --participant <participant.json>
                 [--recipient manager] [--locale sv] [--data <data.json>]
                 --out <file.html|file.eml>
                                  render a message template for a participant to a file
  carrot help [<command>]         this text, or a command's

diff, push and draw verify (without --file) talk to the admin API: set CARROT_URL,
CARROT_KEY_ID and CARROT_SECRET.
Exit codes: 0 done, 1 invalid, refused or not verified, 2 could not run. See docs/cli.md.
";

const VALIDATE: &str = "\
carrot validate <config.yaml>

Parses the program configuration (YAML or JSON) as the server would and prints every error
as `path: reason` (exit 1), or a summary of the program (exit 0). Needs no connection.
";

const DIFF: &str = "\
carrot diff <config.yaml>

Fetches the deployed configuration (GET /v1/programs/{program}) and prints what pushing this file would
change: rules, campaigns and budgets added, removed or changed (with their versions), other
top-level fields, and the effective time. Exits 1 when the server would refuse the push (a
changed rule or campaign whose version was not raised, an effective time less than a minute ahead).
Needs CARROT_URL, CARROT_KEY_ID and CARROT_SECRET.
";

const PUSH: &str = "\
carrot push <config.yaml>

Validates the file locally, then stores it with PUT /v1/programs/{program} and prints the stored version
and when it takes effect, or the server's errors (exit 1).
Needs CARROT_URL, CARROT_KEY_ID and CARROT_SECRET.
";

const BACKTEST: &str = "\
carrot backtest --config <config.yaml> --events <history.jsonl|.csv>
                [--roster <roster.csv|.jsonl>] [--as-of <RFC 3339>] [--json]

Replays historical events through the configuration with the real award path over an
in-memory store (no table, no connection), in the order they were received, and reports
points per month, rule and segment, the caps and budgets that bit, the outstanding liability
at --as-of (default: when the last event was received) and its cost, and the top earners.
Participants without a roster entry are enrolled at their first event with role `rep`.
File layouts are in docs/cli.md. --json prints the report as JSON.
";

const IMPORT: &str = "\
carrot import <reps.csv|reps.jsonl>

Enrols (or updates) the participants the file lists with POST /v1/programs/{program}/imports,
in chunks of at most 1,000 rows and 1 MiB, and prints what became of each row (created,
updated, unchanged, or its errors) by the line of the file it starts on. A CSV file has a
header row naming its columns; a JSON Lines file holds one participant object a line. The
columns are in docs/api.md (Import). Importing the same file again changes nothing. Exits 1
when a row has errors (the other rows are imported) or the server refused the file.
Needs CARROT_URL, CARROT_PROGRAM, CARROT_KEY_ID and CARROT_SECRET.
";

const DRAW: &str = "\
carrot draw verify <program> <drawing> <period>
carrot draw verify --file <record.json>

Recomputes a prize drawing from its stored record and entrant list: the list is sorted and
unique, its counts and SHA-256 match the record, the revealed seed matches the commitment,
and the winners re-drawn from the seed and the list are the recorded ones. Prints one line
per check (ok or FAILED), the winners, and exits 0 when every check passed, 1 otherwise.
Without --file it reads GET /v1/programs/{program}/drawings/{drawing}/{period} page by page and refuses a record
of another program; it needs CARROT_URL, CARROT_KEY_ID and CARROT_SECRET. --file reads an
export, {\"record\": …, \"entrants\": […]}, with no connection. See docs/drawings.md.
";

const PREVIEW: &str = "\
carrot preview <kind> --program <config.yaml> --participant <participant.json>
               [--recipient manager] [--locale sv] [--data <data.json>]
               --out <file.html|file.eml>

Renders the message template <kind> (digest, journey.welcome, non_use.notice, ...) as the
sender would for the participant whose profile the JSON file holds (the body of PUT
/v1/programs/{program}/participants/{participant}), with the program's notifications section. --data is the
request's data (default: a realistic sample of the kind); --locale overrides the
participant's; --recipient manager previews mail to their manager. --out x.html writes a page
with the subject, the email, its plain text and the SMS; --out x.eml writes the whole MIME
message. Needs no connection. The kinds and their data are in docs/notifications.md.
";

enum Command {
    Help(&'static str),
    Validate(PathBuf),
    Diff(PathBuf),
    Push(PathBuf),
    Import(PathBuf),
    Backtest(BacktestArgs),
    DrawVerify(DrawSource),
    Preview(preview::PreviewArgs),
}

/// Where `draw verify` reads the drawing from.
enum DrawSource {
    Api {
        program: String,
        drawing: String,
        period: String,
    },
    File(PathBuf),
}

struct BacktestArgs {
    config: PathBuf,
    events: PathBuf,
    roster: Option<PathBuf>,
    as_of: Option<Timestamp>,
    json: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(problem) => {
            eprintln!("error: {problem}\n\n{USAGE}");
            return ExitCode::from(FAILED);
        }
    };
    match run(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(FAILED)
        }
    }
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let Some((name, rest)) = args.split_first() else {
        return Ok(Command::Help(USAGE));
    };
    let help_of = |command: &str| match command {
        "validate" => Ok(Command::Help(VALIDATE)),
        "diff" => Ok(Command::Help(DIFF)),
        "push" => Ok(Command::Help(PUSH)),
        "import" => Ok(Command::Help(IMPORT)),
        "backtest" => Ok(Command::Help(BACKTEST)),
        "draw" => Ok(Command::Help(DRAW)),
        "preview" => Ok(Command::Help(PREVIEW)),
        other => Err(format!("unknown command {other:?}")),
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        return rest
            .first()
            .map_or(Ok(Command::Help(USAGE)), |c| help_of(c));
    }
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        return help_of(name);
    }
    let config = || match rest {
        [path] if !path.starts_with('-') => Ok(PathBuf::from(path)),
        _ => Err(format!(
            "{name} takes one argument, the configuration file, got {rest:?}"
        )),
    };
    match name.as_str() {
        "validate" => config().map(Command::Validate),
        "diff" => config().map(Command::Diff),
        "push" => config().map(Command::Push),
        "import" => match rest {
            [path] if !path.starts_with('-') => Ok(Command::Import(PathBuf::from(path))),
            _ => Err(format!("import takes one argument, the file, got {rest:?}")),
        },
        "backtest" => parse_backtest(rest).map(Command::Backtest),
        "draw" => parse_draw(rest).map(Command::DrawVerify),
        "preview" => preview::parse(rest).map(Command::Preview),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn parse_backtest(args: &[String]) -> Result<BacktestArgs, String> {
    let (mut config, mut events, mut roster, mut as_of, mut json) = (None, None, None, None, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // `--flag value` or `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--events" => events = Some(PathBuf::from(value()?)),
            "--roster" => roster = Some(PathBuf::from(value()?)),
            "--as-of" => {
                let text = value()?;
                as_of = Some(parse_rfc3339(&text).map_err(|reason| format!("--as-of {reason}"))?);
            }
            "--json" if inline.is_none() => json = true,
            other => return Err(format!("unknown backtest option {other:?}")),
        }
    }
    Ok(BacktestArgs {
        config: config.ok_or("backtest needs --config <config.yaml>")?,
        events: events.ok_or("backtest needs --events <history.jsonl|.csv>")?,
        roster,
        as_of,
        json,
    })
}

fn parse_draw(args: &[String]) -> Result<DrawSource, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["verify", "--file", path] => Ok(DrawSource::File(PathBuf::from(path))),
        ["verify", flag] if flag.starts_with("--file=") => {
            Ok(DrawSource::File(PathBuf::from(&flag["--file=".len()..])))
        }
        ["verify", program, drawing, period]
            if ![program, drawing, period]
                .iter()
                .any(|a| a.starts_with('-')) =>
        {
            Ok(DrawSource::Api {
                program: program.to_owned(),
                drawing: drawing.to_owned(),
                period: period.to_owned(),
            })
        }
        ["verify", ..] => Err(format!(
            "draw verify takes <program> <drawing> <period> or --file <record.json>, got {:?}",
            &args[1..]
        )),
        _ => Err(format!("draw takes the subcommand verify, got {args:?}")),
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    };
    match command {
        Command::Help(text) => {
            say!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(path) => Ok(match parse_config(&path, 1)? {
            Ok((_, program)) => {
                say!("{}", describe::program(&path, &program).trim_end());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        }),
        Command::Diff(path) => runtime()?.block_on(diff::diff(&path)),
        Command::Push(path) => runtime()?.block_on(push(&path)),
        Command::Import(path) => runtime()?.block_on(import::import(&path)),
        Command::Backtest(args) => runtime()?.block_on(run_backtest(args)),
        Command::DrawVerify(DrawSource::File(path)) => draw::verify_file(&path),
        Command::DrawVerify(DrawSource::Api {
            program,
            drawing,
            period,
        }) => runtime()?.block_on(draw::verify_remote(&program, &drawing, &period)),
        Command::Preview(args) => preview::preview(&args),
    }
}

/// Reads and parses a configuration as `version`: its text and program, or, when it is
/// invalid, the exit code to end with once its errors are printed.
fn parse_config(path: &Path, version: u32) -> anyhow::Result<Result<(String, Program), ExitCode>> {
    let text = read(path)?;
    Ok(match Program::parse(&text, version) {
        Ok(program) => Ok((text, program)),
        Err(errors) => {
            print_errors(path, &errors);
            Err(ExitCode::from(REFUSED))
        }
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn print_errors(path: &Path, errors: &[FieldError]) {
    for error in errors {
        say!("{error}");
    }
    let s = if errors.len() == 1 { "" } else { "s" };
    say!("{}: {} error{s}", path.display(), errors.len());
}

async fn push(path: &Path) -> anyhow::Result<ExitCode> {
    // Version 1 for the local check: the server numbers the version it stores.
    let text = match parse_config(path, 1)? {
        Ok((text, _)) => text,
        Err(code) => {
            say!("nothing was sent");
            return Ok(code);
        }
    };
    let api = api::Api::from_env()?;
    let answer = api
        .send("PUT", "", text.into_bytes(), "application/yaml")
        .await?;
    if answer.status != 200 {
        answer.print_problem("the server refused the configuration");
        return Ok(ExitCode::from(REFUSED));
    }
    let body = &answer.body;
    let count =
        |key: &str| describe::plural(body[key].as_i64().unwrap_or(0), &key[..key.len() - 1]);
    say!(
        "stored {} version {}, in force from {} ({}, {}, {})",
        body["program"].as_str().unwrap_or("?"),
        body["version"],
        body["effective_from"].as_str().unwrap_or("?"),
        count("rules"),
        count("campaigns"),
        count("budgets"),
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_backtest(args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let program = match parse_config(&args.config, 1)? {
        Ok((_, program)) => program,
        Err(code) => return Ok(code),
    };
    let history = files::history(&args.events, args.roster.as_deref())?;
    let report = backtest(&program, history, args.as_of).await;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!("{}", describe::backtest(&program, &report).trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
