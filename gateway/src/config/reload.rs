//! What a reload (SIGHUP) may change while calls run: who may call and where calls go. The rest
//! (listeners, the media plane, SIP timers, logging, the CDR file) is bound or built once at
//! start, so a change there is named as needing a restart and the running value stays.

use super::Config;

impl Config {
    /// The configuration to run after a reload read `new`: `new`'s users, trunks, routes,
    /// built-in numbers and Opus settings (used by calls set up from now on), this one's
    /// everything else. Also the sections whose change in `new` waits for a restart.
    pub fn reloaded(&self, new: Config) -> (Config, Vec<&'static str>) {
        let mut restart_needed = Vec::new();
        let mut keep = |name: &'static str, changed: bool| {
            if changed {
                restart_needed.push(name);
            }
        };
        keep("sip", self.sip != new.sip);
        keep("http", self.http != new.http);
        keep("metrics", self.metrics != new.metrics);
        keep("media", self.media != new.media);
        keep("cdr", self.cdr != new.cdr);
        keep("log", self.log != new.log);
        let applied = Config {
            sip: self.sip.clone(),
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            media: self.media.clone(),
            cdr: self.cdr.clone(),
            log: self.log.clone(),
            ..new
        };
        (applied, restart_needed)
    }
}
