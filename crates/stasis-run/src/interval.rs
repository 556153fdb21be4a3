//! When to take the next periodic checkpoint: a fixed `--every`, or `--interval auto` from
//! the job's mean time between failures and the measured cost of a checkpoint, by Daly's
//! higher-order estimate of the optimum checkpoint interval (J. T. Daly, "A higher order
//! estimate of the optimum checkpoint interval for restart dumps", FGCS 22(3), 2006):
//!
//! ```text
//! tau = sqrt(2 d M) * (1 + sqrt(d / 2M) / 3 + (d / 2M) / 9) - d    if d < 2M
//! tau = M                                                          otherwise
//! ```
//!
//! with d the checkpoint cost and M the MTBF. The cost is what the job loses per checkpoint
//! (the time it is frozen), smoothed over recent checkpoints so one slow dump does not swing
//! the interval.

use std::time::Duration;

/// The policy the supervisor was given.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalPolicy {
    /// No periodic checkpoints (only on preemption or on request).
    Never,
    Every(Duration),
    Auto {
        mtbf: Duration,
    },
}

/// Cost assumed before the first checkpoint has been measured.
pub const INITIAL_COST: Duration = Duration::from_secs(1);
/// Never checkpoint more often than this, whatever the formula says.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Weight of the newest measurement in the smoothed cost.
const SMOOTHING: f64 = 0.5;

/// Daly's higher-order optimum interval (compute time between checkpoints) for checkpoint
/// cost `cost` and mean time between failures `mtbf`.
pub fn daly(cost: Duration, mtbf: Duration) -> Duration {
    let d = cost.as_secs_f64();
    let m = mtbf.as_secs_f64();
    if m <= 0.0 {
        return MIN_INTERVAL;
    }
    let tau = if d < 2.0 * m {
        let r = d / (2.0 * m);
        (2.0 * d * m).sqrt() * (1.0 + r.sqrt() / 3.0 + r / 9.0) - d
    } else {
        m
    };
    Duration::from_secs_f64(tau.max(MIN_INTERVAL.as_secs_f64()))
}

/// The interval in force and the costs it came from.
#[derive(Debug, Clone)]
pub struct Scheduler {
    policy: IntervalPolicy,
    cost: Option<f64>,
}

impl Scheduler {
    pub fn new(policy: IntervalPolicy) -> Scheduler {
        Scheduler { policy, cost: None }
    }

    /// Feed the cost of a checkpoint just taken (the time the job was frozen).
    pub fn measured(&mut self, cost: Duration) {
        let c = cost.as_secs_f64();
        self.cost = Some(match self.cost {
            None => c,
            Some(old) => SMOOTHING * c + (1.0 - SMOOTHING) * old,
        });
    }

    /// The interval now, or None for no periodic checkpoints.
    pub fn interval(&self) -> Option<Duration> {
        match &self.policy {
            IntervalPolicy::Never => None,
            IntervalPolicy::Every(d) => Some(*d),
            IntervalPolicy::Auto { mtbf } => Some(daly(self.cost(), *mtbf)),
        }
    }

    fn cost(&self) -> Duration {
        self.cost
            .map(Duration::from_secs_f64)
            .unwrap_or(INITIAL_COST)
    }

    /// Why the interval is what it is, in words for `stasis status`.
    pub fn reason(&self) -> String {
        match &self.policy {
            IntervalPolicy::Never => {
                "no periodic checkpoints (--every or --interval auto not given)".into()
            }
            IntervalPolicy::Every(d) => format!("fixed by --every {}", fmt_secs(*d)),
            IntervalPolicy::Auto { mtbf } => format!(
                "Daly's optimum for MTBF {} and a checkpoint cost of {} ({})",
                fmt_secs(*mtbf),
                fmt_secs(self.cost()),
                if self.cost.is_some() {
                    "smoothed from the checkpoints taken"
                } else {
                    "assumed until the first checkpoint is measured"
                }
            ),
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.3} s")
    }
}

/// Parse a duration such as `90s`, `10m`, `1h30m`, `250ms` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 10m, 1h30m or 250ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daly_matches_the_formula_and_its_limits() {
        // d = 60 s, M = 24 h: sqrt(2*60*86400) = 3220.0; r = 60/172800.
        let tau = daly(Duration::from_secs(60), Duration::from_secs(86400)).as_secs_f64();
        let r: f64 = 60.0 / 172800.0;
        let want = (2.0f64 * 60.0 * 86400.0).sqrt() * (1.0 + r.sqrt() / 3.0 + r / 9.0) - 60.0;
        assert!((tau - want).abs() < 1e-6, "{tau} vs {want}");
        assert!((3180.0..3200.0).contains(&tau), "{tau}");
        // A checkpoint costlier than twice the MTBF: checkpoint once per MTBF.
        assert_eq!(
            daly(Duration::from_secs(300), Duration::from_secs(100)),
            Duration::from_secs(100)
        );
        // Never below the floor.
        assert_eq!(
            daly(Duration::from_millis(1), Duration::from_millis(10)),
            MIN_INTERVAL
        );
    }

    #[test]
    fn auto_interval_follows_measured_costs() {
        let mut s = Scheduler::new(IntervalPolicy::Auto {
            mtbf: Duration::from_secs(3600),
        });
        let first = s.interval().unwrap();
        assert_eq!(first, daly(INITIAL_COST, Duration::from_secs(3600)));
        assert!(s.reason().contains("assumed"));
        s.measured(Duration::from_secs(9));
        let slower = s.interval().unwrap();
        assert!(slower > first, "{slower:?} !> {first:?}");
        s.measured(Duration::from_millis(10));
        let cheaper = s.interval().unwrap();
        assert!(cheaper < slower);
        assert!(s.reason().contains("smoothed"));
        assert_eq!(
            Scheduler::new(IntervalPolicy::Every(Duration::from_secs(5))).interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(Scheduler::new(IntervalPolicy::Never).interval(), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }
}
