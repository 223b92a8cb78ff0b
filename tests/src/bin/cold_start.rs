//! Cold start of every function binary, against a hello-world `lambda_runtime` binary
//! (`hello_lambda`) built the same way in the same run: the time from spawning the process to
//! its first request to the Lambda Runtime API, `GET /2018-06-01/runtime/invocation/next`.
//!
//! Run (from the workspace root; one command builds everything and measures):
//!
//! ```text
//! cargo run --release -p carrot-local --bin cold_start [-- --runs N --no-build --env KEY=VALUE]
//! ```
//!
//! `--env KEY=VALUE` (repeatable) adds a variable to every binary's environment, e.g.
//! `SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`: the functions' AWS SDK clients load the
//! system's root certificates when they are built, at init; with that variable they read the one
//! bundle, as on Lambda's `provided.al2023` (one bundle in `/etc/pki/tls/certs`), instead of
//! every file of a Debian-style `/etc/ssl/certs` too.
//!
//! Unless `--no-build` is given, the bench first runs one
//! `cargo build --release --bin ingest --bin award ... --bin hello_lambda` (the release profile
//! of the workspace: fat LTO, one codegen unit, stripped), so the functions and the baseline
//! come from the same build. The binaries are the host's (x86_64 here): the arm64 bootstraps of
//! `sam build` cannot run on this machine.
//!
//! The function binaries are the `BuildProperties: Binary` of every `AWS::Serverless::Function`
//! of `infra/template.yaml`. The bench serves a minimal Runtime API on a free loopback port and
//! spawns each binary with the environment Lambda gives a function (the `AWS_LAMBDA_*`
//! variables, a region, dummy credentials, JSON log format) plus the function's own variables
//! from the template, resolved to plausible values (a queue's URL, a topic's ARN, a table's
//! name, a parameter's default). The time is taken when the server has read the request line.
//! The process must still be alive then (a missing variable would make it exit early, and
//! the figure would be wrong); it is killed right after. Nothing is answered, and no address
//! but loopback is contacted: the functions make no AWS call before their first event.
//!
//! One untimed warm-up round, then `--runs N` rounds (default 30, or `COLD_START_RUNS`), each
//! spawning every binary once in turn, so the noise of a shared machine spreads over all of
//! them alike. It prints per binary the median, the 90th percentile and the ratio of the
//! median to hello's, as a Markdown table (docs/performance.md).

use anyhow::{Context, bail, ensure};
use carrot_local::template::{Template, TemplateValue};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const HELLO: &str = "hello_lambda";
const REGION: &str = "eu-north-1";
const ACCOUNT: &str = "123456789012";
const STAGE: &str = "dev";
/// Lambda's memory size of the function when the template sets none.
const DEFAULT_MEMORY_MB: u32 = 128;
/// How long a process may take to reach the Runtime API.
const TIMEOUT: Duration = Duration::from_secs(20);

struct Binary {
    name: String,
    function: Option<String>,
    path: PathBuf,
    env: BTreeMap<String, String>,
    times: Vec<Duration>,
}

/// What the server saw on one connection: when the request line was read, and that line.
struct Request {
    at: Instant,
    line: String,
    _stream: TcpStream,
}

fn main() -> anyhow::Result<()> {
    let mut runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("COLD_START_RUNS")?
        .unwrap_or(30);
    let mut build = true;
    let mut extra_env = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs takes a number")?
                    .parse()
                    .context("--runs")?
            }
            "--no-build" => build = false,
            "--env" => {
                let pair = args.next().context("--env takes KEY=VALUE")?;
                let (key, value) = pair.split_once('=').context("--env takes KEY=VALUE")?;
                extra_env.insert(key.to_owned(), value.to_owned());
            }
            "--bench" => {} // passed by `cargo bench`
            other => bail!("unknown argument {other}; use --runs N, --no-build, --env KEY=VALUE"),
        }
    }
    ensure!(runs > 0, "--runs must be at least 1");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let template_path = Template::default_path();
    let template = Template::load_from(&template_path)?;
    let raw: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&template_path)?)?;
    let resources = raw
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("the template has no Resources")?;
    let kinds: BTreeMap<String, String> = resources
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.get("Type")?.as_str()?.to_owned())))
        .collect();

    let mut functions = Vec::new(); // (logical id, binary)
    for (id, kind) in &kinds {
        if kind != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resources
            .get(id.as_str())
            .and_then(|r| r.get("Metadata"))
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .with_context(|| format!("{id} has no Metadata.BuildProperties.Binary"))?;
        functions.push((id.clone(), binary.to_owned()));
    }
    ensure!(!functions.is_empty(), "the template has no function");

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let release = target_dir.join("release");
    if build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root).args(["build", "--release"]);
        for (_, bin) in &functions {
            cmd.args(["--bin", bin]);
        }
        cmd.args(["--bin", HELLO]);
        eprintln!("cold_start: {cmd:?}");
        let status = cmd.status().context("running cargo build")?;
        ensure!(status.success(), "cargo build failed: {status}");
    }

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?.to_string();
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::spawn(move || serve(listener, tx));

    let resolver = Resolver {
        template: &template,
        resources,
        kinds: &kinds,
    };
    let mut binaries = Vec::new();
    for (id, bin) in functions
        .iter()
        .map(|(id, bin)| (Some(id.as_str()), bin.as_str()))
        .chain([(None, HELLO)])
    {
        let path = release.join(bin);
        ensure!(
            path.is_file(),
            "{} is missing: build it (run without --no-build)",
            path.display()
        );
        let def = id.and_then(|id| template.function(id));
        let memory = def.and_then(|f| f.memory_mb).unwrap_or(DEFAULT_MEMORY_MB);
        let name = format!("carrot-{STAGE}-{bin}");
        let mut env = lambda_env(&api, &name, memory);
        if let Some(def) = def {
            for (key, value) in &def.environment {
                let value = resolver
                    .resolve(value)
                    .with_context(|| format!("{bin}: cannot resolve {key} = {value:?}"))?;
                env.insert(key.clone(), value);
            }
        }
        env.extend(extra_env.clone());
        binaries.push(Binary {
            name: bin.to_owned(),
            function: id.map(str::to_owned),
            path,
            env,
            times: Vec::with_capacity(runs),
        });
    }

    let logs = target_dir.join("tmp").join("cold_start");
    std::fs::create_dir_all(&logs)?;
    eprintln!(
        "cold_start: {} binaries, 1 warm-up round + {runs} rounds, Runtime API on {api}",
        binaries.len()
    );
    for round in 0..=runs {
        for b in &mut binaries {
            let t = cold_start(b, &rx, &logs)?;
            if round > 0 {
                b.times.push(t);
            }
        }
    }

    let hello = median(&binaries.last().expect("hello is measured").times);
    println!(
        "| binary | function | host binary (x86_64) | cold start median | p90 | median / hello |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for b in &binaries {
        let size = std::fs::metadata(&b.path)?.len();
        let m = median(&b.times);
        println!(
            "| `{}` | {} | {:.2} MB | {:.2} ms | {:.2} ms | {:.2}x |",
            b.name,
            b.function.as_deref().unwrap_or("(baseline)"),
            size as f64 / 1e6,
            ms(m),
            ms(percentile(&b.times, 0.9)),
            m.as_secs_f64() / hello.as_secs_f64(),
        );
    }
    Ok(())
}

/// Spawns the binary, waits for its first request to the Runtime API, checks it is the
/// `next` invocation of a living process, and kills it. Returns the time from spawn to that
/// request.
fn cold_start(b: &Binary, rx: &mpsc::Receiver<Request>, logs: &Path) -> anyhow::Result<Duration> {
    // Nothing left over from the previous process (it was killed and reaped).
    while rx.try_recv().is_ok() {}
    let log_path = logs.join(format!("{}.log", b.name));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(&b.path);
    cmd.env_clear()
        .envs(&b.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", b.path.display()))?;
    let result = wait_for_next(&mut child, rx, start);
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    // The connection stays open until the process is gone: closed earlier, the runtime would
    // see its request fail and exit.
    let Request { at, line, .. } = match result {
        Ok(request) => request,
        Err(e) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("{}: {e}; its output:\n{log}", b.name);
        }
    };
    ensure!(
        alive,
        "{} exited right after its first request ({line}); its output is in {}",
        b.name,
        log_path.display()
    );
    Ok(at.duration_since(start))
}

fn wait_for_next(
    child: &mut Child,
    rx: &mpsc::Receiver<Request>,
    start: Instant,
) -> anyhow::Result<Request> {
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(req) => {
                ensure!(
                    req.line.starts_with(&format!("GET {NEXT_PATH} ")),
                    "the first request was {:?}, not GET {NEXT_PATH}",
                    req.line
                );
                return Ok(req);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait()? {
                    bail!("exited ({status}) before calling the Runtime API");
                }
                ensure!(
                    start.elapsed() < TIMEOUT,
                    "no request to the Runtime API within {TIMEOUT:?}"
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the Runtime API server stopped"),
        }
    }
}

/// The Runtime API: reads each connection's request line, stamps it, and hands the connection
/// over (it is closed when the measurement is done; nothing is ever answered).
fn serve(listener: TcpListener, tx: mpsc::Sender<Request>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let mut line = String::new();
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        if BufReader::new(clone).read_line(&mut line).is_err() {
            continue;
        }
        let at = Instant::now();
        let request = Request {
            at,
            line: line.trim_end().to_owned(),
            _stream: stream,
        };
        if tx.send(request).is_err() {
            return;
        }
    }
}

/// The environment Lambda gives a `provided.al2023` function.
fn lambda_env(api: &str, name: &str, memory_mb: u32) -> BTreeMap<String, String> {
    let stream = "2026/11/23/[$LATEST]0123456789abcdef0123456789abcdef";
    [
        ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "ASIAQCOLDSTARTBENCH00".to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "cold/start/bench/secret/key/0000000000000".to_owned(),
        ),
        (
            "AWS_SESSION_TOKEN",
            "cold-start-bench-session-token".to_owned(),
        ),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Plausible values for the template's intrinsics, as CloudFormation would give them for
/// stage `dev` in eu-north-1.
struct Resolver<'a> {
    template: &'a Template,
    resources: &'a serde_yaml_ng::Mapping,
    kinds: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn resolve(&self, value: &TemplateValue) -> Option<String> {
        match value {
            TemplateValue::Literal(s) => Some(s.clone()),
            TemplateValue::Ref(name) => self.reference(name),
            TemplateValue::GetAtt(res, attr) => self.attribute(res, attr),
            TemplateValue::Sub(format) => {
                let mut out = String::new();
                let mut rest = format.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after.find('}')?;
                    let var = &after[..end];
                    out.push_str(&match var.split_once('.') {
                        Some((res, attr)) if !var.starts_with("AWS::") => {
                            self.attribute(res, attr)?
                        }
                        _ => self.reference(var)?,
                    });
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Some(out)
            }
            TemplateValue::Other(_) => None,
        }
    }

    /// A resource's physical name: its `TableName`, `QueueName`, `TopicName` or `Name`
    /// property, resolved (all of Carrot's are `carrot-<stage>-...`), else
    /// `carrot-<stage>-<logical id>`.
    fn name(&self, id: &str) -> String {
        let props = self.resources.get(id).and_then(|r| r.get("Properties"));
        ["TableName", "QueueName", "TopicName", "Name"]
            .iter()
            .find_map(|key| props?.get(*key))
            .and_then(|v| self.resolve(&TemplateValue::from_yaml(v)))
            .unwrap_or_else(|| format!("carrot-{STAGE}-{}", id.to_ascii_lowercase()))
    }

    fn reference(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => return Some(REGION.to_owned()),
            "AWS::AccountId" => return Some(ACCOUNT.to_owned()),
            "AWS::Partition" => return Some("aws".to_owned()),
            "AWS::URLSuffix" => return Some("amazonaws.com".to_owned()),
            "AWS::StackName" => return Some(format!("carrot-{STAGE}")),
            "Stage" => return Some(STAGE.to_owned()),
            _ => {}
        }
        if let Some(param) = self.template.parameters.get(name) {
            return Some(param.clone().unwrap_or_else(|| match name {
                "SenderEmail" => "points@example.com".to_owned(),
                _ => format!("{name}-value"),
            }));
        }
        let n = self.name(name);
        Some(match self.kinds.get(name)?.as_str() {
            "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{n}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{n}"),
            "AWS::SecretsManager::Secret" => {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{n}-AbCdEf")
            }
            "AWS::Serverless::HttpApi" => "a1b2c3d4e5".to_owned(),
            _ => n,
        })
    }

    fn attribute(&self, res: &str, attr: &str) -> Option<String> {
        let n = self.name(res);
        Some(match (self.kinds.get(res)?.as_str(), attr) {
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{n}"),
            ("AWS::SQS::Queue", "QueueName") => n,
            ("AWS::SQS::Queue", "QueueUrl") => self.reference(res)?,
            ("AWS::SNS::Topic", "TopicArn") => self.reference(res)?,
            ("AWS::SNS::Topic", "TopicName") => n,
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}")
            }
            _ => return None,
        })
    }
}

fn median(times: &[Duration]) -> Duration {
    percentile(times, 0.5)
}

/// The nearest-rank percentile.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
