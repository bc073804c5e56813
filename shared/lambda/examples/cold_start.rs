//! Cold start, invocation durations, peak memory and AWS requests of the four Lambda binaries,
//! run as Lambda runs them: each `bootstrap` (built by `scripts/build-lambdas.sh`) is started
//! against a minimal Lambda runtime API on loopback, with the environment the SAM template
//! gives it, over moto (behind a proxy that counts the AWS requests), the sandbox directory
//! and the BambooHR emulator.
//!
//! ```text
//! scripts/build-lambdas.sh
//! cargo run --release -p hrsync-lambda --example cold_start -- [LAMBDA_DIR] [RUNS]
//! ```
//!
//! Per run and function: a fresh process (a cold start: the time from spawn to its first
//! `GET /runtime/invocation/next` is the init), then 20 workers' events through it (a hire each:
//! webhook, fetch, mapping, entra, write-back), ten one record at a time and ten as one batch.
//! Durations are the runtime API's view: from handing the event over to the response.
//! Figures are medians over the runs; AWS latencies are loopback's, not the cloud's.

#[path = "../../../tests/aws_fixture/mod.rs"]
mod aws_fixture;
#[path = "../../aws/tests/moto/mod.rs"]
mod moto;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_fixture::{Deployment, bamboo_webhook, employee, sqs_event, webhook_event};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hrsync_pipeline::ports::QueueName;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

const WORKERS_PER_RUN: usize = 20;

type Result<T> = std::result::Result<T, String>;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/lambda".into()));
    let runs: usize = args
        .next()
        .map(|r| r.parse().expect("RUNS is a number"))
        .unwrap_or(3);
    if let Err(error) = measure(&dir, runs).await {
        eprintln!("cold_start: {error}");
        std::process::exit(1);
    }
}

/// What one measured function did over the runs.
#[derive(Debug, Default)]
struct Figures {
    init_ms: Vec<f64>,
    cold_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    batch_ms: Vec<f64>,
    peak_rss_kb: Vec<u64>,
    /// CPU time (user + system) per warm one-record invocation, per run.
    cpu_ms: Vec<f64>,
    /// AWS requests of the warm one-record invocations, by operation.
    requests: BTreeMap<String, u64>,
    warm_invocations: u64,
}

async fn measure(dir: &Path, runs: usize) -> Result<()> {
    for function in ["intake", "mapping", "entra", "writeback"] {
        let binary = dir.join(function).join("bootstrap");
        if !binary.exists() {
            return Err(format!(
                "{} is missing: build the functions first (scripts/build-lambdas.sh)",
                binary.display()
            ));
        }
    }
    let deployment = Deployment::start("").await;
    let proxy = CountingProxy::start(&deployment.moto.endpoint).await;
    let mut figures: BTreeMap<&str, Figures> = BTreeMap::new();
    for run in 0..runs {
        let ids: Vec<String> = (0..WORKERS_PER_RUN)
            .map(|n| format!("{}", 1000 + run * 100 + n))
            .collect();
        for id in &ids {
            deployment
                .hr
                .put_employee(id, employee(id, "Cold", &format!("Start{id}")));
        }

        // intake: the webhooks, then the fetches from hr-events.
        let intake = Function::start(dir, "intake", &deployment, &proxy).await?;
        let webhook = figures.entry("intake (webhook)").or_default();
        webhook.init_ms.push(ms(intake.init));
        let mut cpu_before = 0.0;
        for (n, id) in ids.iter().enumerate() {
            if n == 1 {
                cpu_before = intake.cpu_ms();
            }
            let (headers, body) = bamboo_webhook("employee.created", id, &format!("run {run}"));
            let before = proxy.snapshot();
            let (took, answer) = intake.invoke(webhook_event(&headers, &body)).await?;
            if answer["statusCode"] != 202 {
                return Err(format!("intake answered the webhook with {answer}"));
            }
            match n {
                0 => webhook.cold_ms.push(ms(took)),
                _ => webhook.warm(took, proxy.since(&before)),
            }
        }
        webhook
            .cpu_ms
            .push((intake.cpu_ms() - cpu_before) / (ids.len() - 1) as f64);
        let fetch = figures.entry("intake (fetch)").or_default();
        consume(
            &deployment,
            &proxy,
            &intake,
            QueueName::HrEvents,
            fetch,
            false,
        )
        .await?;
        figures
            .entry("intake (webhook)")
            .or_default()
            .peak_rss_kb
            .push(intake.stop());

        for (name, queue) in [
            ("mapping", QueueName::WorkerEvents),
            ("entra", QueueName::Directory),
            ("writeback", QueueName::Writeback),
        ] {
            let function = Function::start(dir, name, &deployment, &proxy).await?;
            let stage = figures.entry(name).or_default();
            stage.init_ms.push(ms(function.init));
            consume(&deployment, &proxy, &function, queue, stage, true).await?;
            stage.peak_rss_kb.push(function.stop());
        }
        eprintln!("cold_start: run {} of {runs} done", run + 1);
    }
    report(&figures, runs);
    Ok(())
}

/// The queue's messages through the function: ten invocations of one record (the first a
/// cold one when `cold`), then one batch of ten.
async fn consume(
    deployment: &Deployment,
    proxy: &CountingProxy,
    function: &Function,
    queue: QueueName,
    figures: &mut Figures,
    cold: bool,
) -> Result<()> {
    let singles = WORKERS_PER_RUN / 2;
    let mut cpu_before = function.cpu_ms();
    for n in 0..singles {
        if n == 1 && cold {
            cpu_before = function.cpu_ms();
        }
        let before = proxy.snapshot();
        let took = deliver(deployment, function, queue, 1).await?;
        match (n, cold) {
            (0, true) => figures.cold_ms.push(ms(took)),
            _ => figures.warm(took, proxy.since(&before)),
        }
    }
    let warm = singles - usize::from(cold);
    figures
        .cpu_ms
        .push((function.cpu_ms() - cpu_before) / warm as f64);
    let took = deliver(deployment, function, queue, 10).await?;
    figures.batch_ms.push(ms(took));
    Ok(())
}

/// Receives up to `max` messages (exactly `max` expected), invokes, deletes what succeeded.
async fn deliver(
    deployment: &Deployment,
    function: &Function,
    queue: QueueName,
    max: i32,
) -> Result<Duration> {
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages.len() < max as usize && Instant::now() < deadline {
        let wanted = max - messages.len() as i32;
        messages.extend(deployment.receive(queue, wanted, 60).await);
    }
    if messages.len() != max as usize {
        return Err(format!(
            "{queue}: {} of {max} messages arrived",
            messages.len()
        ));
    }
    let (took, answer) = function.invoke(sqs_event(queue, &messages)).await?;
    let failures = answer["batchItemFailures"].as_array().map_or(0, Vec::len);
    if failures > 0 {
        return Err(format!("{queue}: {answer}"));
    }
    for message in &messages {
        deployment
            .sqs
            .delete_message()
            .queue_url(&deployment.urls[&queue].url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .map_err(|e| format!("DeleteMessage: {e}"))?;
    }
    Ok(took)
}

impl Figures {
    fn warm(&mut self, took: Duration, requests: BTreeMap<String, u64>) {
        self.warm_ms.push(ms(took));
        self.warm_invocations += 1;
        for (operation, count) in requests {
            *self.requests.entry(operation).or_default() += count;
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    format!("{:.1}", sorted[sorted.len() / 2])
}

fn report(figures: &BTreeMap<&str, Figures>, runs: usize) {
    println!(
        "\n{runs} runs, {WORKERS_PER_RUN} hires each; medians in ms; peak RSS = the largest VmHWM\n"
    );
    println!(
        "| function | init (cold start) | first invocation | warm, 1 record | CPU per warm invocation | warm, batch of 10 | peak RSS | AWS requests per warm invocation |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, f) in figures {
        let requests: Vec<String> = f
            .requests
            .iter()
            .map(|(op, n)| format!("{op} {:.1}", *n as f64 / f.warm_invocations.max(1) as f64))
            .collect();
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            median(&f.init_ms),
            median(&f.cold_ms),
            median(&f.warm_ms),
            median(&f.cpu_ms),
            median(&f.batch_ms),
            f.peak_rss_kb
                .iter()
                .max()
                .map_or("-".into(), |kb| format!("{:.1} MB", *kb as f64 / 1024.0)),
            requests.join(", "),
        );
    }
}

// --- a function process and the runtime API it talks to ------------------------------------

struct Function {
    child: Child,
    api: Arc<RuntimeApi>,
    events: mpsc::Sender<(String, String)>,
    /// Spawn to the first `GET /runtime/invocation/next`.
    init: Duration,
}

#[derive(Default)]
struct RuntimeApi {
    events: tokio::sync::Mutex<Option<mpsc::Receiver<(String, String)>>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<String>>>>,
    ready: Mutex<Option<oneshot::Sender<Result<()>>>>,
    next_id: Mutex<u64>,
}

impl Function {
    async fn start(
        dir: &Path,
        name: &str,
        deployment: &Deployment,
        proxy: &CountingProxy,
    ) -> Result<Self> {
        let (events_tx, events_rx) = mpsc::channel(16);
        let (ready_tx, ready_rx) = oneshot::channel();
        let api = Arc::new(RuntimeApi::default());
        *api.events.lock().await = Some(events_rx);
        *api.ready.lock().expect("lock") = Some(ready_tx);
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&api));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move { axum::serve(listener, router).await });

        let started = Instant::now();
        let child = Command::new(dir.join(name).join("bootstrap"))
            .env_clear()
            .envs(&deployment.env)
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
                ("AWS_LAMBDA_FUNCTION_NAME", format!("hrsync-{name}")),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start".into()),
                (
                    "AWS_LAMBDA_LOG_GROUP_NAME",
                    format!("/aws/lambda/hrsync-{name}"),
                ),
                ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN".into()),
                ("AWS_REGION", "eu-west-1".into()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_ENDPOINT_URL", proxy.url.clone()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let ready = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .map_err(|_| format!("{name} did not ask for an event within 30 s"))?
            .map_err(|_| format!("{name}: the runtime API stopped"))?;
        ready.map_err(|e| format!("{name} failed its init: {e}"))?;
        Ok(Self {
            child,
            api,
            events: events_tx,
            init: started.elapsed(),
        })
    }

    /// Hands the event over and waits for the answer: how long it took, and the answer.
    async fn invoke(&self, event: Value) -> Result<(Duration, Value)> {
        let id = {
            let mut next = self.api.next_id.lock().expect("lock");
            *next += 1;
            format!("request-{next}")
        };
        let (tx, rx) = oneshot::channel();
        self.api
            .waiting
            .lock()
            .expect("lock")
            .insert(id.clone(), tx);
        let started = Instant::now();
        self.events
            .send((id, event.to_string()))
            .await
            .map_err(|_| "the function stopped taking events")?;
        let answer = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .map_err(|_| "no answer within 60 s")?
            .map_err(|_| "the runtime API stopped")??;
        let took = started.elapsed();
        let answer = serde_json::from_str(&answer).map_err(|e| format!("answer: {e}"))?;
        Ok((took, answer))
    }

    /// CPU time (user + system) the process has used so far, in ms (`/proc/<pid>/stat`, in
    /// clock ticks of 10 ms: Linux's USER_HZ is 100).
    fn cpu_ms(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at the state, field 3.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(14) + ticks(15)) * 10.0
    }

    /// Stops the process; returns its peak resident memory (KB).
    fn stop(mut self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let peak = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let _ = self.child.kill();
        let _ = self.child.wait();
        peak
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    if let Some(ready) = api.ready.lock().expect("lock").take() {
        let _ = ready.send(Ok(()));
    }
    let mut events = api.events.lock().await;
    let received = match events.as_mut() {
        Some(rx) => rx.recv().await,
        None => None,
    };
    match received {
        Some((id, body)) => invocation(&id, body),
        None => StatusCode::GONE.into_response(),
    }
}

fn invocation(id: &str, body: String) -> Response {
    let deadline = jiff::Timestamp::now().as_millisecond() + 60_000;
    (
        [
            ("Lambda-Runtime-Aws-Request-Id", id.to_owned()),
            ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:hrsync".to_owned(),
            ),
            ("Lambda-Runtime-Trace-Id", format!("Root=1-{id}")),
            ("Content-Type", "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    if let Some(waiting) = api.waiting.lock().expect("lock").remove(&id) {
        let _ = waiting.send(Ok(body));
    }
    StatusCode::ACCEPTED
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    if let Some(waiting) = api.waiting.lock().expect("lock").remove(&id) {
        let _ = waiting.send(Err(format!("invocation error: {body}")));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: String) -> StatusCode {
    if let Some(ready) = api.ready.lock().expect("lock").take() {
        let _ = ready.send(Err(body));
    }
    StatusCode::ACCEPTED
}

// --- a proxy in front of moto that counts the AWS requests ---------------------------------

#[derive(Clone)]
struct CountingProxy {
    url: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CountingProxy {
    async fn start(moto: &str) -> Self {
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let upstream = Upstream {
            base: moto.to_owned(),
            http: reqwest::Client::new(),
            counts: Arc::clone(&counts),
        };
        let router = Router::new().fallback(forward).with_state(upstream);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, counts }
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("lock").clone()
    }

    /// Requests made since `before`, by operation.
    fn since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .filter_map(|(op, n)| {
                let delta = n - before.get(&op).copied().unwrap_or(0);
                (delta > 0).then_some((op, delta))
            })
            .collect()
    }
}

/// The AWS operation of a request: `X-Amz-Target` for the JSON protocols (DynamoDB, SQS, SSM,
/// Secrets Manager), method and resource for Scheduler's REST API.
fn operation(method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        return target
            .replace("DynamoDB_20120810.", "dynamodb:")
            .replace("AmazonSQS.", "sqs:")
            .replace("AmazonSSM.", "ssm:")
            .replace("secretsmanager.", "secretsmanager:");
    }
    let resource = uri.path().split('/').nth(1).unwrap_or_default();
    format!("scheduler:{method} /{resource}")
}

async fn forward(
    State(upstream): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *upstream
        .counts
        .lock()
        .expect("lock")
        .entry(operation(&method, &uri, &headers))
        .or_default() += 1;
    let url = format!(
        "{}{}",
        upstream.base,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = upstream.http.request(method, url).body(body);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = HeaderMap::new();
            for (name, value) in answer.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    headers.insert(name.clone(), value.clone());
                }
            }
            let body = answer.bytes().await.unwrap_or_default();
            (status, headers, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    }
}
