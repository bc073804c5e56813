//! A moto server (the local AWS emulator) for the adapters' tests: started on a free loopback
//! port from `.venv-moto/` (installed by `scripts/install-moto.sh`, which `scripts/test.sh`
//! runs), killed when dropped. The SDK reaches it through the environment, as in production.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Moto {
    /// Starts a fresh moto server; panics, saying how to install it, when it is missing.
    pub fn start() -> Self {
        let server = repo().join(".venv-moto/bin/moto_server");
        assert!(
            server.exists(),
            "moto (the local AWS emulator) is not installed at {}: run scripts/install-moto.sh (scripts/test.sh does)",
            server.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {endpoint} within 30 s");
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
