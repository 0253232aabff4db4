//! A real `redis-server` (or sentinel) per test: its own free port, its own
//! temporary directory, `requirepass` always on, killed when dropped.
//!
//! Tests never use a mock. When the binary is missing they skip with a loud
//! message (CI installs it); set `REDIS_SERVER_BIN` to use another binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use x402_facilitator::config::{RedisSettings, Secret};

/// Password every harness server requires.
pub const PASSWORD: &str = "harness-pass-5b9e17c2";

/// The redis-server binary, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let default = PathBuf::from("/usr/bin/redis-server");
    if default.is_file() {
        return Some(default);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file())
    })
}

/// The binary, or `None` after a loud notice that the calling test is skipped.
pub fn require(test: &str) -> Option<PathBuf> {
    let b = binary();
    if b.is_none() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED {test}: redis-server not found (install it, or set REDIS_SERVER_BIN)\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    b
}

/// How to start a data server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `appendonly yes` with `appendfsync always`.
    pub aof_always: bool,
    /// Replicate from this port on 127.0.0.1.
    pub replica_of: Option<u16>,
    /// Also listen on a unix socket in the server's directory.
    pub unix_socket: bool,
    /// Serve TLS only (no plain port), with the certificate in `tests/it/support/tls`.
    pub tls: bool,
}

/// PEM of the CA that signed the harness's TLS server certificate.
pub fn tls_ca_pem() -> Vec<u8> {
    std::fs::read(tls_dir().join("ca.pem")).unwrap()
}

fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/tls")
}

enum Kind {
    Server(Options),
    Sentinel { password: String },
}

/// One running redis-server or sentinel process.
pub struct RedisServer {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    kind: Kind,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl RedisServer {
    /// A standalone server, or `None` (after the skip notice) without the binary.
    pub fn start(test: &str) -> Option<RedisServer> {
        Self::start_with(test, Options::default())
    }

    pub fn start_with(test: &str, options: Options) -> Option<RedisServer> {
        let bin = require(test)?;
        Some(Self::launch(bin, Kind::Server(options)))
    }

    /// A sentinel monitoring `master_port` as `service` (quorum 1, fast failure
    /// detection), itself protected by `sentinel_password`.
    pub fn start_sentinel(
        test: &str,
        service: &str,
        master_port: u16,
        sentinel_password: &str,
    ) -> Option<RedisServer> {
        let bin = require(test)?;
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "bind 127.0.0.1\n\
             dir {dir}\n\
             logfile {dir}/redis.log\n\
             requirepass {sentinel_password}\n\
             sentinel monitor {service} 127.0.0.1 {master_port} 1\n\
             sentinel auth-pass {service} {PASSWORD}\n\
             sentinel down-after-milliseconds {service} 500\n\
             sentinel failover-timeout {service} 3000\n\
             sentinel parallel-syncs {service} 1\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("sentinel.conf"), conf).unwrap();
        Some(Self::launch_in(
            bin,
            Kind::Sentinel {
                password: sentinel_password.to_owned(),
            },
            dir,
        ))
    }

    fn launch(bin: PathBuf, kind: Kind) -> RedisServer {
        Self::launch_in(bin, kind, tempfile::tempdir().unwrap())
    }

    fn launch_in(bin: PathBuf, kind: Kind, dir: TempDir) -> RedisServer {
        let mut server = RedisServer {
            bin,
            child: None,
            port: free_port(),
            dir,
            kind,
        };
        let mut last_log = String::new();
        // A port picked as free can be taken before the server binds it; try a few.
        for _ in 0..5 {
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(log) => {
                    last_log = log;
                    server.kill();
                    server.port = free_port();
                }
            }
        }
        panic!("redis-server did not start; last log:\n{last_log}");
    }

    fn args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        match &self.kind {
            Kind::Sentinel { .. } => {
                vec![
                    format!("{dir}/sentinel.conf"),
                    "--sentinel".into(),
                    "--port".into(),
                    self.port.to_string(),
                ]
            }
            Kind::Server(o) => {
                let (plain, tls) = if o.tls {
                    (0, self.port)
                } else {
                    (self.port, 0)
                };
                let mut a: Vec<String> = [
                    "--port",
                    &plain.to_string(),
                    "--tls-port",
                    &tls.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    &dir,
                    "--logfile",
                    &format!("{dir}/redis.log"),
                    "--requirepass",
                    PASSWORD,
                    "--masterauth",
                    PASSWORD,
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                if o.aof_always {
                    a.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
                } else {
                    a.extend(["--appendonly", "no"].map(String::from));
                }
                if let Some(m) = o.replica_of {
                    a.extend([
                        "--replicaof".to_string(),
                        "127.0.0.1".to_string(),
                        m.to_string(),
                    ]);
                }
                if o.tls {
                    let t = tls_dir();
                    a.extend([
                        "--tls-cert-file".to_string(),
                        t.join("server.pem").display().to_string(),
                        "--tls-key-file".to_string(),
                        t.join("server.key").display().to_string(),
                        "--tls-ca-cert-file".to_string(),
                        t.join("ca.pem").display().to_string(),
                        "--tls-auth-clients".to_string(),
                        "no".to_string(),
                    ]);
                }
                if o.unix_socket {
                    a.extend([
                        "--unixsocket".to_string(),
                        format!("{dir}/redis.sock"),
                        "--unixsocketperm".into(),
                        "700".into(),
                    ]);
                }
                a
            }
        }
    }

    fn password(&self) -> &str {
        match &self.kind {
            Kind::Sentinel { password } => password,
            Kind::Server(_) => PASSWORD,
        }
    }

    fn tls(&self) -> bool {
        matches!(&self.kind, Kind::Server(o) if o.tls)
    }

    fn ready_lines(&self) -> usize {
        self.log().matches("Ready to accept connections").count()
    }

    /// Start the process and wait until it answers PING (for a TLS server:
    /// until it logs that it is ready); `Err(log)` if it died.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let ready_before = self.ready_lines();
        let child = Command::new(&self.bin)
            .args(self.args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            if if self.tls() {
                self.ready_lines() > ready_before
            } else {
                self.ping_ok()
            } {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no PONG within 10 s\n{}", self.log()))
    }

    /// Answers PING with PONG (not LOADING, not an error).
    fn ping_ok(&self) -> bool {
        let Ok(mut conn) = self
            .client_with(self.password())
            .get_connection_with_timeout(Duration::from_millis(200))
        else {
            return false;
        };
        redis::cmd("PING")
            .query::<String>(&mut conn)
            .is_ok_and(|p| p == "PONG")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Settings that reach this server directly, with a short command timeout.
    pub fn settings(&self) -> RedisSettings {
        RedisSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            password: Some(Secret::new(PASSWORD)),
            connect_timeout: std::time::Duration::from_millis(1_000),
            command_timeout: std::time::Duration::from_millis(1_000),
            ..RedisSettings::default()
        }
    }

    /// Every key matching `pattern` (SCAN), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self
            .client_with(self.password())
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("redis connection");
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut conn)
            .expect("KEYS");
        keys.sort();
        keys
    }

    fn client_with(&self, password: &str) -> redis::Client {
        let mut info = redis::RedisConnectionInfo::default();
        if !password.is_empty() {
            info = info.set_password(password);
        }
        let addr = redis::ConnectionAddr::Tcp("127.0.0.1".into(), self.port);
        redis::Client::open(
            redis::IntoConnectionInfo::into_connection_info(addr)
                .unwrap()
                .set_redis_settings(info),
        )
        .unwrap()
    }

    /// A plain synchronous connection for assertions (`password` "" for none).
    pub fn connection_with(&self, password: &str) -> redis::Connection {
        self.client_with(password)
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// A synchronous connection with this process's password (the data
    /// password, or a sentinel's own).
    pub fn connection(&self) -> redis::Connection {
        self.connection_with(self.password())
    }

    /// SIGKILL and reap: no shutdown, no final fsync.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Start again on the same port, in the same directory (so with its AOF).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn_and_wait() {
            panic!("redis-server did not restart on port {}:\n{log}", self.port);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Sentinel deployment of local processes: a master, two replicas linked
/// to it, and one sentinel that sees both replicas (quorum 1).
pub struct SentinelDeployment {
    pub master: RedisServer,
    pub replicas: [RedisServer; 2],
    pub sentinel: RedisServer,
    pub service: String,
    pub sentinel_password: String,
}

impl SentinelDeployment {
    /// Start everything and wait until the sentinel sees both replicas;
    /// `None` (after the skip notice) without the binary.
    pub fn start(test: &str, service: &str, sentinel_password: &str) -> Option<SentinelDeployment> {
        let master = RedisServer::start(test)?;
        let replica_opts = Options {
            replica_of: Some(master.port()),
            ..Options::default()
        };
        let replicas = [
            RedisServer::start_with(test, replica_opts.clone())?,
            RedisServer::start_with(test, replica_opts)?,
        ];
        for r in &replicas {
            wait_for("replica link up", Duration::from_secs(10), || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut r.connection())
                    .ok()?;
                info.contains("master_link_status:up").then_some(())
            });
        }
        let sentinel =
            RedisServer::start_sentinel(test, service, master.port(), sentinel_password)?;
        wait_for(
            "sentinel sees both replicas",
            Duration::from_secs(10),
            || {
                let fields: Vec<String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(service)
                    .query(&mut sentinel.connection())
                    .ok()?;
                let i = fields.iter().position(|f| f == "num-slaves")?;
                (fields.get(i + 1)? == "2").then_some(())
            },
        );
        Some(SentinelDeployment {
            master,
            replicas,
            sentinel,
            service: service.to_owned(),
            sentinel_password: sentinel_password.to_owned(),
        })
    }

    /// Settings that find the master through the sentinel (the host and port
    /// are deliberately unusable: only the sentinel names the master).
    pub fn settings(&self) -> RedisSettings {
        RedisSettings {
            host: "192.0.2.1".into(),
            port: 1,
            password: Some(Secret::new(PASSWORD)),
            sentinel: x402_facilitator::config::SentinelSettings {
                service_name: Some(self.service.clone()),
                addresses: vec![format!("127.0.0.1:{}", self.sentinel.port())],
                password: Some(Secret::new(self.sentinel_password.clone())),
            },
            connect_timeout: std::time::Duration::from_millis(1_000),
            command_timeout: std::time::Duration::from_millis(1_000),
            ..RedisSettings::default()
        }
    }
}
