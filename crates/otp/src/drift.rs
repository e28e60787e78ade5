//! How fast a token's clock drifts, and when it falls outside a verifier's
//! window: pure arithmetic over *sightings* — moments the vault saw which
//! time step a token showed.
//!
//! A sighting says only which step the token was in, so it bounds the
//! token's clock offset to one period: seeing step `c` at time `t` means
//! the offset lies in `[start(c) − t, start(c) + period − t)`. Its midpoint
//! is the estimate ([`clock_offset`]); the error is at most half a period
//! and, over many sightings at random phases, averages out.
//!
//! The rate is a Theil–Sen fit (the median of the slopes between every
//! pair of sightings): a few wrong sightings — a code matched in the
//! neighbouring step by chance, a clock set in between — move a median
//! little, where a least-squares line would follow them.

use crate::engine::Window;
use crate::params::TimeStep;

/// Seconds in a mean Gregorian year.
pub const SECONDS_PER_YEAR: f64 = 365.2425 * 86_400.0;

/// The token's clock offset in seconds (positive: fast) estimated from
/// seeing it show the step `offset_steps` away from the step of `at`.
pub fn clock_offset(step: TimeStep, at: u64, offset_steps: i64) -> f64 {
    let period = step.period() as f64;
    let Ok(current) = step.counter_at(at) else {
        // Before t0 the token shows no step: only the step offset is known.
        return offset_steps as f64 * period;
    };
    let seen = current as i128 + offset_steps as i128;
    let start = step.t0() as f64 + seen as f64 * period;
    start + period / 2.0 - at as f64
}

/// A clock's drift as fitted from its sightings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftFit {
    /// Seconds gained per year (negative: the clock loses time).
    pub rate_s_per_year: f64,
    /// The fitted offset in seconds at `reference`.
    pub offset_s: f64,
    /// The moment `offset_s` is for: the last sighting.
    pub reference: u64,
    /// How many sightings the fit used.
    pub sightings: usize,
    /// Seconds between the first and the last sighting.
    pub span_s: u64,
}

impl DriftFit {
    /// The fitted offset at `time`, in seconds.
    pub fn offset_at(&self, time: u64) -> f64 {
        let years = (time as f64 - self.reference as f64) / SECONDS_PER_YEAR;
        self.offset_s + self.rate_s_per_year * years
    }
}

/// Sightings closer together than this give no slope of their own: two
/// seconds apart, half a period of quantisation is a huge rate.
pub const MIN_PAIR_SPAN_S: u64 = 86_400;

/// Fits `(time, offset in seconds)` points. `None` without at least two
/// points a day or more apart (one sighting has an offset, no rate).
/// Quadratic in the number of points: meant for the tens a token gathers.
pub fn fit(points: &[(u64, f64)]) -> Option<DriftFit> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, &(ti, yi)) in points.iter().enumerate() {
        for &(tj, yj) in &points[i + 1..] {
            if ti.abs_diff(tj) >= MIN_PAIR_SPAN_S {
                slopes.push((yj - yi) / (tj as f64 - ti as f64));
            }
        }
    }
    let slope = median(&mut slopes)?;
    let reference = points.iter().map(|p| p.0).max()?;
    let first = points.iter().map(|p| p.0).min()?;
    let mut residuals: Vec<f64> = points
        .iter()
        .map(|&(t, y)| y - slope * (t as f64 - reference as f64))
        .collect();
    Some(DriftFit {
        rate_s_per_year: slope * SECONDS_PER_YEAR,
        offset_s: median(&mut residuals)?,
        reference,
        sightings: points.len(),
        span_s: reference - first,
    })
}

/// The median, by selection (linear time); `None` for no values.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let (len, mid) = (values.len(), values.len() / 2);
    let (low, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if len % 2 == 1 {
        return Some(upper);
    }
    let lower = low.iter().copied().max_by(f64::total_cmp)?;
    Some((lower + upper) / 2.0)
}

/// Where a token stands against a verifier's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Standing {
    /// Its offset is beyond the window: some or all codes are refused now.
    Outside,
    /// Inside, but forecast to leave the window within the horizon.
    Near,
    /// Inside, and not forecast to leave within the horizon.
    Inside,
    /// Inside now, but one sighting gives no rate to forecast with.
    NoRate,
}

impl Standing {
    pub fn name(self) -> &'static str {
        match self {
            Standing::Outside => "outside",
            Standing::Near => "near-edge",
            Standing::Inside => "inside",
            Standing::NoRate => "no-rate",
        }
    }
}

/// A token's forecast against one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    pub standing: Standing,
    /// The offset now, in seconds.
    pub offset_s: f64,
    /// The window's edge on the side the clock drifts to, in seconds.
    pub edge_s: f64,
    /// When the offset crosses that edge (`None`: never, or already out).
    pub outside_at: Option<u64>,
}

/// Forecasts against `window` (in steps of `period` seconds). A token is
/// counted outside once its offset passes `window × period`: from there on
/// some of its codes land beyond the window, depending on the phase.
/// `horizon_s` is how far ahead "near the edge" looks.
pub fn forecast(
    fit: Option<&DriftFit>,
    last_offset_s: f64,
    period: u64,
    window: Window,
    now: u64,
    horizon_s: u64,
) -> Forecast {
    let period = period as f64;
    let ahead = window.ahead as f64 * period;
    let behind = -(window.behind as f64) * period;
    let offset = fit.map_or(last_offset_s, |f| f.offset_at(now));
    let rate = fit.map(|f| f.rate_s_per_year);
    let edge = match rate {
        Some(r) if r < 0.0 => behind,
        Some(_) => ahead,
        None if offset < 0.0 => behind,
        None => ahead,
    };
    if offset > ahead || offset < behind {
        return Forecast {
            standing: Standing::Outside,
            offset_s: offset,
            edge_s: edge,
            outside_at: None,
        };
    }
    let Some(rate) = rate else {
        return Forecast {
            standing: Standing::NoRate,
            offset_s: offset,
            edge_s: edge,
            outside_at: None,
        };
    };
    let outside_at = (rate != 0.0).then(|| {
        let years = (edge - offset) / rate;
        now.saturating_add((years * SECONDS_PER_YEAR).clamp(0.0, 1e15) as u64)
    });
    let near = outside_at.is_some_and(|at| at <= now.saturating_add(horizon_s));
    Forecast {
        standing: if near {
            Standing::Near
        } else {
            Standing::Inside
        },
        offset_s: offset,
        edge_s: edge,
        outside_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const START: u64 = 1_700_000_000;

    /// A deterministic generator (xorshift64*), so a failure repeats.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Uniform in [-1, 1).
        fn signed(&mut self) -> f64 {
            self.next() * 2.0 - 1.0
        }
    }

    /// What the vault sees of a token whose clock is `initial + rate·t +
    /// jitter` seconds off: the step it shows at the moment of sighting.
    fn sighting(step: TimeStep, at: u64, offset: f64) -> i64 {
        let token_time = (at as f64 + offset).floor() as u64;
        step.counter_at(token_time).unwrap() as i64 - step.counter_at(at).unwrap() as i64
    }

    /// A simulated fleet: 1,000 tokens with known rates (−120..120
    /// s/year), initial offsets of ±20 s, ±3 s of jitter, 20 sightings at
    /// random moments over three years. The stated tolerance: the median
    /// error under 2.5 s/year, 95 % within 6 s/year, all within 12 s/year (a sighting
    /// knows the offset only to ±15 s).
    #[test]
    fn simulated_fleet_rates_come_back_within_tolerance() {
        let step = TimeStep::DEFAULT;
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
        let mut errors = Vec::new();
        for token in 0..1000 {
            let rate = noise.signed() * 120.0;
            let initial = noise.signed() * 20.0;
            let mut points = Vec::new();
            for _ in 0..20 {
                let at = START + (noise.next() * 3.0 * 365.0 * DAY as f64) as u64;
                let years = (at - START) as f64 / SECONDS_PER_YEAR;
                let offset = initial + rate * years + noise.signed() * 3.0;
                let k = sighting(step, at, offset);
                points.push((at, clock_offset(step, at, k)));
            }
            let fitted = fit(&points).unwrap();
            let error = (fitted.rate_s_per_year - rate).abs();
            assert!(
                error < 12.0,
                "token {token}: rate {rate:.1} s/year fitted as {:.1}",
                fitted.rate_s_per_year
            );
            errors.push(error);
        }
        errors.sort_by(f64::total_cmp);
        let p95 = errors[errors.len() * 95 / 100];
        let p50 = errors[errors.len() / 2];
        assert!(p50 < 2.5, "median error {p50:.2} s/year");
        assert!(p95 < 6.0, "95th percentile error {p95:.2} s/year");
        // The tolerance is not loose by orders of magnitude.
        assert!(errors[errors.len() - 1] > 1.0, "{errors:?}");
    }

    /// Two wrong sightings of 20 (a clock set back, a chance match one step
    /// off) leave the rate where it was.
    #[test]
    fn outliers_move_the_fit_little() {
        let step = TimeStep::DEFAULT;
        let rate = 60.0;
        let mut points: Vec<(u64, f64)> = (0..20u64)
            .map(|i| {
                let at = START + i * 40 * DAY + 1234 * i;
                let offset = rate * (at - START) as f64 / SECONDS_PER_YEAR;
                (at, clock_offset(step, at, sighting(step, at, offset)))
            })
            .collect();
        points[5].1 -= 300.0;
        points[12].1 += 90.0;
        let fitted = fit(&points).unwrap();
        assert!((fitted.rate_s_per_year - rate).abs() < 8.0, "{fitted:?}");
    }

    #[test]
    fn one_sighting_or_one_day_gives_no_rate() {
        assert_eq!(fit(&[(START, 10.0)]), None);
        assert_eq!(fit(&[(START, 10.0), (START + 600, 40.0)]), None);
        assert!(fit(&[(START, 10.0), (START + DAY, 10.0)]).is_some());
    }

    #[test]
    fn the_offset_is_the_middle_of_the_step_seen() {
        let step = TimeStep::DEFAULT;
        // At 10 s into a step, the token showing the next step is 20..50 s fast.
        let at = 1_700_000_010 + 10; // 1_700_000_010 starts a step
        assert_eq!(1_700_000_010 % 30, 0);
        assert_eq!(clock_offset(step, at, 1), 35.0);
        assert_eq!(clock_offset(step, at, 0), 5.0);
        assert_eq!(clock_offset(step, at, -2), -55.0);
    }

    #[test]
    fn forecast_says_when_the_edge_is_crossed() {
        let fitted = DriftFit {
            rate_s_per_year: 30.0,
            offset_s: 30.0,
            reference: START,
            sightings: 10,
            span_s: 365 * DAY,
        };
        // Entra ±2 steps of 30 s: the edge is 60 s, a year away.
        let f = forecast(
            Some(&fitted),
            0.0,
            30,
            Window::symmetric(2),
            START,
            400 * DAY,
        );
        assert_eq!(f.standing, Standing::Near);
        let at = f.outside_at.unwrap();
        assert!(at.abs_diff(START + SECONDS_PER_YEAR as u64) < 2, "{at}");
        let f = forecast(
            Some(&fitted),
            0.0,
            30,
            Window::symmetric(2),
            START,
            300 * DAY,
        );
        assert_eq!(f.standing, Standing::Inside);
        let f = forecast(Some(&fitted), 0.0, 30, Window::symmetric(0), START, DAY);
        assert_eq!(f.standing, Standing::Outside);
        // A slow clock crosses the other edge.
        let slow = DriftFit {
            rate_s_per_year: -60.0,
            ..fitted
        };
        let f = forecast(Some(&slow), 0.0, 30, Window::symmetric(2), START, DAY);
        assert_eq!(f.edge_s, -60.0);
        assert!(f.outside_at.unwrap() > START + 500 * DAY);
        let f = forecast(None, -45.0, 30, Window::symmetric(2), START, DAY);
        assert_eq!(f.standing, Standing::NoRate);
    }
}
