//! Figures from outcomes: percentiles, throughput, per-message CPU, the
//! table `switchboard bench` prints and its JSON form.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::fleet::{DensityFigures, FailoverFigures};
use super::load::quantile;
use super::{Contender, ContenderFigures};

/// One contender's figures, ready to print or serialize.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Contender name.
    pub agent: &'static str,
    /// switchboard's journal and state: "durable", "ephemeral" or "store"; null for the others.
    pub state: Option<&'static str>,
    /// Messages sent.
    pub sent: usize,
    /// Messages answered.
    pub answered: usize,
    /// Sent but never answered (or failed to send).
    pub lost: usize,
    /// Answered twice.
    pub duplicates: usize,
    /// Answered messages per second, first send to last reply.
    pub throughput: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// The agent's CPU time during the load, seconds.
    pub cpu_s: Option<f64>,
    /// That per answered message, microseconds.
    pub cpu_per_message_us: Option<f64>,
    /// RSS connected and idle, MiB.
    pub idle_rss_mib: Option<f64>,
    /// Peak RSS, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Process start to ready, seconds.
    pub ready_s: Option<f64>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Figures {
    /// The figures of one outcome.
    pub fn of(o: &ContenderFigures) -> Self {
        let mut lat = o.load.latencies.clone();
        lat.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let secs = o.load.elapsed.as_secs_f64();
        let answered = o.load.answered;
        Figures {
            agent: o.contender.name(),
            state: o.contender.state(),
            sent: o.load.sent,
            answered,
            lost: o.load.sent.saturating_sub(answered),
            duplicates: o.load.duplicates,
            throughput: if secs > 0.0 {
                answered as f64 / secs
            } else {
                0.0
            },
            p50_ms: ms(quantile(&lat, 0.50)),
            p95_ms: ms(quantile(&lat, 0.95)),
            p99_ms: ms(quantile(&lat, 0.99)),
            max_ms: ms(lat.last().copied().unwrap_or_default()),
            cpu_s: o.busy_cpu.map(|c| c.as_secs_f64()),
            cpu_per_message_us: o
                .busy_cpu
                .filter(|_| answered > 0)
                .map(|c| c.as_secs_f64() * 1e6 / answered as f64),
            idle_rss_mib: o.idle.map(|p| p.rss as f64 / MIB),
            peak_rss_mib: o.peak_rss.map(|b| b as f64 / MIB),
            ready_s: o.ready_in.map(|d| d.as_secs_f64()),
        }
    }
}

/// The table, then the ratios between contenders that ran.
pub fn table(outcomes: &[ContenderFigures]) -> String {
    let figures: Vec<Figures> = outcomes.iter().map(Figures::of).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<21} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "agent",
        "done",
        "lost",
        "msg/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "CPU µs/msg",
        "RSS idle",
        "RSS peak"
    );
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.1}{unit}"));
    for f in &figures {
        let _ = writeln!(
            out,
            "{:<21} {:>6} {:>5} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11} {:>9} {:>9}",
            f.agent,
            f.answered,
            f.lost,
            f.throughput,
            f.p50_ms,
            f.p95_ms,
            f.p99_ms,
            f.max_ms,
            opt(f.cpu_per_message_us, ""),
            opt(f.idle_rss_mib, " MiB"),
            opt(f.peak_rss_mib, " MiB"),
        );
    }
    let find = |c: Contender| figures.iter().find(|f| f.agent == c.name());
    let cpu_ratio = |a: &Figures, b: &Figures| match (a.cpu_per_message_us, b.cpu_per_message_us) {
        (Some(a), Some(b)) => format!("{:.2}x", ratio(a, b)),
        _ => "-".to_owned(),
    };
    let mut ratios = Vec::new();
    // Against the others, switchboard as it runs by default (durable), or
    // the ephemeral one when only it ran.
    let sb = find(Contender::Switchboard).or(find(Contender::SwitchboardEphemeral));
    if let Some(sb) = sb {
        if let Some(sdk) = find(Contender::Sdk) {
            ratios.push(format!(
                "{} vs band-sdk: {:.1}x the throughput, p50 {:.2}x, p99 {:.2}x, CPU per message {}",
                sb.agent,
                ratio(sb.throughput, sdk.throughput),
                ratio(sb.p50_ms, sdk.p50_ms),
                ratio(sb.p99_ms, sdk.p99_ms),
                cpu_ratio(sb, sdk),
            ));
        }
        if let Some(floor) = find(Contender::Floor) {
            ratios.push(format!(
                "{} vs floor: p50 {:.2}x, p99 {:.2}x, throughput {:.2}x",
                sb.agent,
                ratio(sb.p50_ms, floor.p50_ms),
                ratio(sb.p99_ms, floor.p99_ms),
                ratio(sb.throughput, floor.throughput),
            ));
        }
    }
    // What keeping the state costs, against keeping it in memory.
    for (kept, label) in [
        (Contender::Switchboard, "durable"),
        (Contender::SwitchboardStore, "store"),
    ] {
        if let (Some(kept), Some(eph)) = (find(kept), find(Contender::SwitchboardEphemeral)) {
            let goal = match label {
                "store" => format!(
                    " (goal p99 within 2x: {})",
                    met(ratio(kept.p99_ms, eph.p99_ms) <= 2.0)
                ),
                _ => String::new(),
            };
            ratios.push(format!(
                "{label} vs --ephemeral: p50 {:.2}x, p99 {:.2}x, throughput {:.2}x, CPU per message {}{goal}",
                ratio(kept.p50_ms, eph.p50_ms),
                ratio(kept.p99_ms, eph.p99_ms),
                ratio(kept.throughput, eph.throughput),
                cpu_ratio(kept, eph),
            ));
        }
    }
    if !ratios.is_empty() {
        out.push('\n');
        for line in ratios {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Fleet density: a row per fleet size, then the goals.
pub fn density_table(figures: &[DensityFigures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:>6} {:>8} {:>9} {:>9} {:>16} {:>11} {:>9}",
        "agents",
        "rooms",
        "ready s",
        "RSS MiB",
        "peak MiB",
        "KiB/extra agent",
        "idle CPU %",
        "answered"
    );
    for f in figures {
        let _ = writeln!(
            out,
            "{:>6} {:>6} {:>8.1} {:>9.1} {:>9.1} {:>16} {:>11.2} {:>9}",
            f.agents,
            f.rooms,
            f.ready_s,
            f.rss_mib,
            f.peak_rss_mib,
            f.rss_per_extra_agent_kib
                .map_or("-".to_owned(), |k| format!("{k:.0}")),
            f.idle_cpu_percent,
            format!("{}/{}", f.answered, f.agents),
        );
    }
    let worst_rss = figures
        .iter()
        .filter_map(|f| f.rss_per_extra_agent_kib.map(|k| (k, f.agents)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((kib, n)) = worst_rss {
        let _ = writeln!(
            out,
            "\ngoal < 1024 KiB RSS per extra agent: {} (at most {kib:.0} KiB, with {n} agents)",
            met(kib < 1024.0)
        );
    }
    if let Some(worst) = figures
        .iter()
        .max_by(|a, b| a.idle_cpu_percent.total_cmp(&b.idle_cpu_percent))
    {
        // "About zero": under 1% of one core, at rest, whatever the fleet's size.
        let _ = writeln!(
            out,
            "goal idle CPU about 0 (< 1% of a core): {} (at most {:.2}%, with {} agents)",
            met(worst.idle_cpu_percent < 1.0),
            worst.idle_cpu_percent,
            worst.agents
        );
    }
    out
}

/// Failover: each takeover, then median, min and max against the goal.
pub fn failover_text(f: &FailoverFigures) -> String {
    let times: Vec<String> = f.times_s.iter().map(|t| format!("{t:.2}")).collect();
    format!(
        "takeovers (s, SIGKILL to first reply): {}\n\
         median {:.2} s, min {:.2} s, max {:.2} s over {} with a {} s lease\n\
         goal < 10 s: {}\n",
        times.join(" "),
        f.median_s,
        f.min_s,
        f.max_s,
        f.runs,
        f.lease_s,
        met(f.median_s < 10.0 && f.max_s < 10.0)
    )
}

fn met(ok: bool) -> &'static str {
    match ok {
        true => "met",
        false => "NOT met",
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&v, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
