//! A moto server (the local AWS emulator) for the adapters' tests: started on a free loopback
//! port from `.venv-moto/` (installed by `scripts/install-moto.sh`, which `scripts/test.sh`
//! runs), killed when dropped.
//!
//! It serves one request at a time. moto checks a DynamoDB condition and then writes without a
//! lock (and rolls a failed transaction back by restoring a copy of the whole table), and its
//! SQS `ReceiveMessage` takes no lock, so on its stock threaded server two concurrent requests
//! can both pass one condition or both receive one message: AWS never does. One lock around
//! each request gives every request AWS's atomicity while the clients still race.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERIALIZED_MOTO: &str = r#"
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
)
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple(sys.argv[1], int(sys.argv[2]), serialized, threaded=True,
           request_handler=MotoRequestHandler)
"#;

#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository root (the folder with `Cargo.lock`), from whichever package includes this.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
        .to_owned()
}

impl Moto {
    /// Starts a fresh moto server; panics, saying how to install it, when it is missing.
    pub fn start() -> Self {
        let venv = repo().join(".venv-moto");
        assert!(
            venv.join("bin/moto_server").exists(),
            "moto (the local AWS emulator) is not installed at {}: run scripts/install-moto.sh (scripts/test.sh does)",
            venv.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new(venv.join("bin/python"))
            .args(["-c", SERIALIZED_MOTO, "127.0.0.1", &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto from {}: {e}", venv.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {endpoint} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, endpoint }
    }

    /// An SDK config for this server (static test credentials, eu-west-1).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "moto",
            ))
            .load()
            .await
    }
}
