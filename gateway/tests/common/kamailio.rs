//! Kamailio playing a carrier's SIP edge (registrar and proxy), from a config in
//! `gateway/tests/kamailio/` with the test's addresses passed as defines (`-A NAME=VALUE`).
//!
//! Kamailio forks worker processes: it is started in a process group of its own, and the whole
//! group is killed when the test is done with it (on drop too, so a panicking test leaves no
//! Kamailio holding its port).

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Kamailio; its process group is killed on drop.
pub struct Kamailio {
    child: Option<Child>,
    config: PathBuf,
    defines: Vec<String>,
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    dir: PathBuf,
    /// Starts so far: each one logs to its own file.
    runs: u32,
}

impl Kamailio {
    /// Starts `config` (a file in `gateway/tests/kamailio/`) listening on UDP `addr`, with
    /// further `defines` (`NAME=VALUE`, a string value in double quotes), and waits until it
    /// answers an OPTIONS.
    pub fn start(config: &str, addr: SocketAddr, defines: &[String]) -> Kamailio {
        let dir = std::env::temp_dir().join(format!(
            "landline-kamailio-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).expect("kamailio dir");
        let mut all = vec![format!("LISTEN=udp:{addr}")];
        all.extend(defines.iter().cloned());
        let mut kamailio = Kamailio {
            child: None,
            config: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/kamailio")
                .join(config),
            defines: all,
            addr,
            dir,
            runs: 0,
        };
        kamailio.run();
        kamailio
    }

    /// Starts it again on the same address and config (after [`Kamailio::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Kills every process of this Kamailio at once (the carrier vanishing), and waits.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The group id is the leader's pid (process_group(0) at spawn).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            // Workers die with the group; wait until none holds the port any more.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && UdpSocket::bind(self.addr).is_err() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Everything this Kamailio logged, over all its runs.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|run| std::fs::read_to_string(self.log_path(run)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What the current run logged.
    pub fn run_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
    }

    /// Lines of the current run's log containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.run_log()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("kamailio-{run}.log"))
    }

    fn run(&mut self) {
        self.runs += 1;
        let rundir = self.dir.join(format!("run-{}", self.runs));
        std::fs::create_dir_all(&rundir).expect("kamailio run dir");
        let log = std::fs::File::create(self.log_path(self.runs)).expect("kamailio log");
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&self.config)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(&rundir);
        for define in &self.defines {
            cmd.args(["-A", define]);
        }
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("kamailio log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run kamailio ({e}): install it with `apt-get install kamailio` \
                     (scripts/test does)"
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until Kamailio answers an OPTIONS (bounded: a loaded machine takes a while to
    /// fork its workers).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("kamailio exited ({status}):\n{}", self.run_log());
            }
            if super::options_status(self.addr).is_some_and(|s| s.starts_with("SIP/2.0 200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("kamailio did not answer OPTIONS:\n{}", self.run_log());
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.kill();
    }
}
