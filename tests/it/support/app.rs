//! Black-box harness: the real application, in process on port 0
//! ([`spawn_app`]), or the real binary as a child process ([`BinApp`]) for
//! what only a process shows (exit codes, stdout logs, signals).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use x402_facilitator::app::{App, AppState};
use x402_facilitator::config::Settings;

/// Settings for tests: port 0, fast devnet blocks, limits off, health uncached.
pub fn test_settings() -> Settings {
    let mut s = Settings::default();
    s.server.port = 0;
    s.chain.devnet.block_time = std::time::Duration::from_millis(200);
    s.rate_limit.enabled = false;
    s.settlement.poll_interval = std::time::Duration::from_millis(50);
    s.settlement.reconcile_interval = std::time::Duration::from_millis(200);
    // Most tests settle at l1Confirmations -1 (fast); the opt-in is tested on its own.
    s.settlement.accept_mempool = true;
    // Tests switch dependencies off and on and look at /health at once.
    s.server.health_cache = std::time::Duration::from_millis(0);
    s
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    configure(&mut settings);
    let problems = settings.validate();
    assert!(problems.is_empty(), "test settings invalid: {problems:?}");
    let app = App::build(settings).await.expect("app builds");
    start(app)
}

/// Start an already built app (for tests that build with given providers).
pub fn start(app: App) -> TestApp {
    let addr = app.addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
        state,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Begin shutdown and wait for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), h).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The compiled binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_x402-facilitator"))
}

/// Run the binary to completion in `dir` with `args` and `env` (and nothing
/// else from X402_* or MAINNET): (exit code, stdout, stderr).
pub fn run_bin(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("X402_") || k == "MAINNET" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The binary running as `serve`, its stdout collected line by line.
pub struct BinApp {
    pub child: Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl BinApp {
    /// Start with a config file holding `config` (JSON; `server.port` is
    /// replaced by a free port) and extra env; returns once the port accepts.
    pub fn start(mut config: serde_json::Value, env: &[(&str, &str)]) -> BinApp {
        let port = free_port();
        config["server"]["port"] = serde_json::json!(port);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("config")).expect("mkdir");
        std::fs::write(dir.path().join("config/config.json"), config.to_string())
            .expect("write config");
        let mut cmd = Command::new(bin());
        cmd.current_dir(dir.path())
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("X402_") || k == "MAINNET" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "binary exited early with {status}: {:?}",
                    lines.lock().expect("lock")
                );
            }
            assert!(
                Instant::now() < deadline,
                "binary did not listen: {:?}",
                lines.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        BinApp {
            child,
            port,
            lines,
            _dir: dir,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Send a signal by name (TERM, INT, KILL).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Wait for exit, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BinApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (bind to 0, read, release).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
