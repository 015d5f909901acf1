//! The fault test's own servers and processes: RabbitMQ nodes and a PostgreSQL cluster on
//! free ports (so the test may restart or kill them without touching the shared ones on 5672 and
//! 5432), and `einvoice-worker run` processes it can kill -9. Every guard cleans up on drop.
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Two free ports a RabbitMQ node needs: AMQP and Erlang distribution.
fn free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// Send `signal` to a process group we started (its leader's pid is the group id).
fn signal_group(pgid: u32, signal: &str) {
    let _ =
        Command::new("kill").args([&format!("-{signal}"), "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
}

/// One RabbitMQ node of our own: its data, logs, config and cookie live under `dir`.
pub struct RabbitNode {
    pub name: String,
    pub port: u16,
    dist_port: u16,
    home: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

/// The deployment's advanced.config, so the fault tests run the broker as we tell users to.
const ADVANCED_CONFIG: &str = include_str!("../../deploy/rabbitmq/advanced.config");

impl RabbitNode {
    /// Prepare (not start) a node named `<short>@localhost`; `home` holds the shared cookie.
    pub fn new(home: &Path, short: &str) -> RabbitNode {
        let dir = home.join(short);
        std::fs::create_dir_all(dir.join("log")).unwrap();
        let cookie = home.join(".erlang.cookie");
        if !cookie.exists() {
            std::fs::write(&cookie, format!("FAULTCOOKIE{}", std::process::id())).unwrap();
            std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
        }
        // No management plugin, no listener from the machine's /etc/rabbitmq (that is the shared node's).
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        std::fs::write(dir.join("rabbitmq.conf"), "loopback_users = none\nlog.file.level = warning\n").unwrap();
        // What deploy/rabbitmq/advanced.config recommends: the at-least-once dead-letter worker
        // sends a retry tier's expired messages again after 5 s without a confirm instead of
        // 3 minutes (a leader kill can swallow its first forward).
        std::fs::write(dir.join("advanced.config"), ADVANCED_CONFIG).unwrap();
        let (port, dist_port) = free_ports();
        RabbitNode { name: format!("{short}@localhost"), port, dist_port, home: home.to_path_buf(), dir, child: None }
    }

    pub fn start(&mut self) {
        let d = &self.dir;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(d.join("server.out")).unwrap();
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", &self.home)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", d.join("rabbitmq-env.conf"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server starts (is RabbitMQ installed?)");
        self.child = Some(child);
        self.await_startup();
        let timeout =
            self.ctl_ok(&["eval", "application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout)."]);
        assert_eq!(timeout.trim(), "{ok,5000}", "{}: advanced.config not in effect", self.name);
    }

    /// `rabbitmqctl -n <node> args…` with our cookie.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", &self.home)
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rabbitmqctl runs")
    }

    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn await_startup(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.ctl(&["-q", "await_startup", "--timeout", "5"]).status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("RabbitMQ node {} exited ({status}); see {}", self.name, self.dir.join("server.out").display());
            }
            assert!(Instant::now() < deadline, "RabbitMQ node {} did not start within 120 s", self.name);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stop gracefully (then make sure nothing of it is left).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.ctl(&["stop"]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// The node dies at once (SIGKILL to its whole process group), as on a host crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PostgreSQL cluster of our own (`pg_createcluster`, trust auth), dropped on drop.
pub struct PgCluster {
    version: String,
    pub name: String,
    pub port: u16,
}

impl PgCluster {
    pub fn start(name: &str) -> PgCluster {
        let pg = PgCluster::create(name);
        pg.ctl("start");
        pg
    }

    /// Create (not start) a cluster on a free port.
    fn create(name: &str) -> PgCluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .expect("a PostgreSQL version");
        let port = free_port();
        let pg = PgCluster { version, name: name.to_string(), port };
        // fsync off: this cluster only lives for the test; restarts are clean, and a kill -9 of
        // its processes leaves the OS's page cache (what the failover test reads) intact.
        pg.run(
            "pg_createcluster",
            &["-p", &port.to_string(), "-o", "fsync=off", "-o", "max_connections=200"],
            &["--", "--auth=trust"],
        );
        pg
    }

    /// A streaming standby of `primary`: a new cluster whose data directory is replaced by
    /// `pg_basebackup -R` (which writes `standby.signal` and `primary_conninfo`), started and
    /// streaming before this returns. Its configuration is its own (Debian keeps it in
    /// /etc/postgresql), so the primary's `synchronous_standby_names`, set afterwards with
    /// ALTER SYSTEM, does not follow it: the promoted standby does not wait for a standby.
    pub fn standby_of(primary: &PgCluster, name: &str) -> PgCluster {
        let pg = PgCluster::create(name);
        let data = pg.data_dir();
        // Empty, not removed: the version directory above it belongs to root.
        for e in std::fs::read_dir(&data).expect("the new cluster's data directory") {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg.bin("pg_basebackup"))
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string(), "-U", "postgres", "-R", "-X", "stream"])
            .args(["-c", "fast", "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("pg_basebackup runs");
        assert!(out.status.success(), "pg_basebackup for {}: {}", pg.name, String::from_utf8_lossy(&out.stderr));
        pg.ctl("start");
        let deadline = Instant::now() + Duration::from_secs(60);
        while primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") != "1" {
            assert!(Instant::now() < deadline, "standby {} is not streaming from {} after 60 s", pg.name, primary.name);
            std::thread::sleep(Duration::from_millis(200));
        }
        pg
    }

    /// Make every commit wait until the standby has flushed it (`synchronous_standby_names`).
    pub fn make_synchronous(&self) {
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'");
        self.sql("SELECT pg_reload_conf()");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != "1" {
            assert!(Instant::now() < deadline, "the standby of {} did not become synchronous", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One statement through psql as postgres; its output, trimmed (panics on failure).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-XAtc", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql {sql} on {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn bin(&self, tool: &str) -> PathBuf {
        Path::new("/usr/lib/postgresql").join(&self.version).join("bin").join(tool)
    }

    /// Where the cluster keeps its data (`pg_lsclusters`).
    pub fn data_dir(&self) -> PathBuf {
        let out =
            Command::new("pg_lsclusters").args(["-h", &self.version, &self.name]).output().expect("pg_lsclusters runs");
        let text = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(text.split_whitespace().nth(5).unwrap_or_else(|| panic!("no data directory in {text:?}")))
    }

    /// The cluster dies at once, as on a host crash: SIGKILL to the postmaster and every process
    /// it started (each backend is its own session, so there is no group to signal). The
    /// postmaster is stopped first so it cannot start another child meanwhile.
    pub fn kill9(&self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{} is not running (no {})", self.name, pid_file.display()));
        let kill = |sig: &str, p: i32| {
            let _ = Command::new("kill").args([sig, &p.to_string()]).stderr(Stdio::null()).status();
        };
        kill("-STOP", pid);
        let children: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after ')'.
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(pid)
            })
            .collect();
        for c in children {
            kill("-KILL", c);
        }
        kill("-KILL", pid);
    }

    /// Promote a standby (`pg_promote`, which waits until the promotion is complete).
    pub fn promote(&self) {
        assert_eq!(self.sql("SELECT pg_promote(true, 60)"), "t", "{} was not promoted", self.name);
    }

    /// The end of the WAL a standby has replayed, once replay has caught up with what it
    /// received (its primary is gone): where its timeline will fork from the primary's.
    pub fn replayed_lsn(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let caught_up = self.sql(
                "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() OR pg_last_wal_receive_lsn() IS NULL",
            );
            if caught_up == "t" || Instant::now() > deadline {
                return self.sql("SELECT pg_last_wal_replay_lsn()");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Transactions this (dead) primary committed at or after `lsn` in its own WAL: what a
    /// standby that stopped there never received (`pg_waldump`; no valid record there means none).
    pub fn commits_after(&self, lsn: &str) -> usize {
        let out = Command::new(self.bin("pg_waldump"))
            .arg("-p")
            .arg(self.data_dir().join("pg_wal"))
            .args(["-s", lsn, "-r", "Transaction"])
            .stdin(Stdio::null())
            .output()
            .expect("pg_waldump runs");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("desc: COMMIT")).count()
    }

    fn run(&self, cmd: &str, before: &[&str], after: &[&str]) {
        let out = Command::new(cmd)
            .args(before)
            .args([self.version.as_str(), self.name.as_str()])
            .args(after)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{cmd} runs: {e}"));
        assert!(out.status.success(), "{cmd} {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
    }

    pub fn ctl(&self, action: &str) {
        self.run("pg_ctlcluster", &["--skip-systemctl-redirect"], &[action, "-m", "fast"]);
    }

    pub fn restart(&self) {
        self.ctl("restart");
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `einvoice-worker run` processes in fixed slots; each incarnation logs to its own file.
pub struct Workers {
    config: PathBuf,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    slots: Vec<Option<Child>>,
    incarnation: usize,
    pub logs: Vec<PathBuf>,
    pub killed: usize,
    /// Processes that ended without us killing them (a crash is a finding, not noise).
    pub unexpected_exits: Vec<String>,
}

impl Workers {
    pub fn start(n: usize, config: &Path, env: Vec<(String, String)>, log_dir: &Path) -> Workers {
        let mut w = Workers {
            config: config.to_path_buf(),
            env,
            log_dir: log_dir.to_path_buf(),
            slots: (0..n).map(|_| None).collect(),
            incarnation: 0,
            logs: Vec::new(),
            killed: 0,
            unexpected_exits: Vec::new(),
        };
        for slot in 0..n {
            w.spawn(slot);
        }
        w
    }

    fn spawn(&mut self, slot: usize) {
        self.incarnation += 1;
        let log = self.log_dir.join(format!("worker-{slot}-{}.log", self.incarnation));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_einvoice-worker"))
            .arg("run")
            .env("EINVOICE_CONFIG", &self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start the worker binary");
        self.logs.push(log);
        self.slots[slot] = Some(child);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// SIGKILL the worker in `slot` and start a replacement.
    pub fn kill9_and_replace(&mut self, slot: usize) {
        if let Some(mut c) = self.slots[slot].take() {
            let _ = c.kill();
            let _ = c.wait();
            self.killed += 1;
        }
        self.spawn(slot);
    }

    /// Restart any worker that exited on its own, and remember that it did.
    pub fn reap(&mut self) {
        for slot in 0..self.slots.len() {
            let exited = match self.slots[slot].as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            if let Some(status) = exited {
                let log = self.logs.iter().rev().find(|p| p.to_string_lossy().contains(&format!("worker-{slot}-")));
                self.unexpected_exits.push(format!(
                    "slot {slot}: {status} (log {})",
                    log.map(|p| p.display().to_string()).unwrap_or_default()
                ));
                self.spawn(slot);
            }
        }
    }

    /// SIGTERM all (graceful: finish in-flight jobs, drain the outbox), SIGKILL after 60 s.
    pub fn stop_all(&mut self) {
        self.reap();
        let mut children: Vec<Child> = self.slots.iter_mut().filter_map(Option::take).collect();
        for c in &children {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for c in &mut children {
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in self.slots.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A scratch directory removed on drop (kept when `FAULT_KEEP_DIR` is set, for post-mortems).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("einvoice-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("FAULT_KEEP_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
