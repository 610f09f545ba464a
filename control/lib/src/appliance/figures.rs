//! Counters as ipvsadm shows them: raw figures from the workers' engine counters, the
//! baseline `-Z` moves, and IPVS's 2-second rate estimator.

use super::*;

/// The 2-second rate estimator of IPVS: rate = delta / elapsed, avg += (rate - avg) / 4.
#[derive(Debug, Default)]
pub(super) struct Estimator {
    last: Option<(Instant, Figures)>,
    entries: Vec<[f64; 5]>,
    dests: Vec<[f64; 5]>,
}

impl Estimator {
    fn update(avg: &mut Vec<[f64; 5]>, now: &[Stats], before: &[Stats], secs: f64) {
        avg.resize(now.len(), [0.0; 5]);
        for (i, a) in avg.iter_mut().enumerate() {
            let n = now[i].fields();
            let b = before.get(i).copied().unwrap_or_default().fields();
            for k in 0..5 {
                let rate = n[k].saturating_sub(b[k]) as f64 / secs;
                a[k] += (rate - a[k]) / 4.0;
            }
        }
    }

    fn tick(&mut self, at: Instant, raw: Figures) {
        if let Some((t, before)) = &self.last {
            let secs = at.duration_since(*t).as_secs_f64().max(0.001);
            Self::update(&mut self.entries, &raw.entries, &before.entries, secs);
            Self::update(&mut self.dests, &raw.dests, &before.dests, secs);
        }
        self.last = Some((at, raw));
    }

    /// A step with the counters at `at`, or with none (run_estimation off): the rates
    /// stand, and the next step only takes the counters.
    fn step(&mut self, at: Instant, raw: Option<Figures>) {
        match raw {
            Some(raw) => self.tick(at, raw),
            None => self.last = None,
        }
    }

    fn rates(v: &[[f64; 5]]) -> Vec<Stats> {
        v.iter()
            .map(|a| Stats::from_fields(a.map(|x| x.round() as u64)))
            .collect()
    }
}

/// Adds one worker's per-id counters (new connections, in and out packets/bytes) to `into`.
pub(super) fn add_counters(
    into: &mut Vec<Stats>,
    conns: &[u64],
    inc: &[(u64, u64)],
    out: &[(u64, u64)],
) {
    if into.len() < conns.len() {
        into.resize(conns.len(), Stats::default());
    }
    for (i, ((c, i_), o)) in conns.iter().zip(inc).zip(out).enumerate() {
        let s = Stats {
            conns: *c,
            inpkts: i_.0,
            inbytes: i_.1,
            outpkts: o.0,
            outbytes: o.1,
        };
        into[i] = into[i].plus(&s);
    }
}

pub(super) fn engine_figures(c: &Counters, into: &mut Figures) {
    add_counters(&mut into.entries, &c.svc_conns, &c.svc_in, &c.svc_out);
    add_counters(&mut into.dests, &c.dest_conns, &c.dest_in, &c.dest_out);
}

impl Appliance {
    /// Counters summed over the workers, as the workers last published them.
    pub(super) fn raw_figures(&self) -> Figures {
        let mut f = Figures::default();
        for w in &self.workers {
            engine_figures(&w.stats.read_engine(), &mut f);
        }
        f
    }

    /// Counters since the last zeroing, with the estimator's rates.
    pub fn figures(&self) -> Figures {
        let raw = self.raw_figures();
        let base = self.baseline.lock();
        let minus = |now: &[Stats], base: &[Stats]| -> Vec<Stats> {
            now.iter()
                .enumerate()
                .map(|(i, s)| s.minus(&base.get(i).copied().unwrap_or_default()))
                .collect()
        };
        let est = self.estimator.lock();
        Figures {
            entries: minus(&raw.entries, &base.entries),
            dests: minus(&raw.dests, &base.dests),
            entry_rates: Estimator::rates(&est.entries),
            dest_rates: Estimator::rates(&est.dests),
        }
    }

    /// One estimator step; the runtime calls it every 2 seconds. With run_estimation off
    /// the rates stand still, as IPVS's; turned on again, the first step only takes the
    /// counters (so no rate spans the pause).
    pub fn estimate(&self) {
        let running = self.director.lock().run_estimation;
        let raw = running.then(|| self.raw_figures());
        self.estimator.lock().step(Instant::now(), raw);
        self.cell.reclaim();
    }

    /// Zeroes the counters of entries and real servers (all when `None`).
    pub(super) fn zero(&self, entries: Option<&[u16]>, dests: Option<&[usize]>) {
        let raw = self.raw_figures();
        let mut base = self.baseline.lock();
        let set = |v: &mut Vec<Stats>, from: &[Stats], i: usize| {
            if v.len() <= i {
                v.resize(i + 1, Stats::default());
            }
            v[i] = from.get(i).copied().unwrap_or_default();
        };
        match entries {
            Some(ids) => ids
                .iter()
                .for_each(|&i| set(&mut base.entries, &raw.entries, usize::from(i))),
            None => base.entries = raw.entries.clone(),
        }
        match dests {
            Some(ids) => ids
                .iter()
                .for_each(|&i| set(&mut base.dests, &raw.dests, i)),
            None => base.dests = raw.dests.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_follows_ipvs_smoothing() {
        let mut e = Estimator::default();
        let t0 = Instant::now();
        let f = |n: u64| Figures {
            entries: vec![Stats {
                conns: n,
                ..Stats::default()
            }],
            ..Figures::default()
        };
        e.tick(t0, f(0));
        e.tick(t0 + Duration::from_secs(2), f(200));
        // rate 100/s, avg = 0 + (100 - 0) / 4
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 25);
        e.tick(t0 + Duration::from_secs(4), f(400));
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 44);
    }

    /// run_estimation off: the rates stand still; back on, the first step takes the
    /// counters only, the next estimates from there (not over the pause).
    #[test]
    fn estimation_paused_keeps_its_rates_and_restarts_from_the_counters() {
        let mut e = Estimator::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let f = |n: u64| Figures {
            entries: vec![Stats {
                conns: n,
                ..Stats::default()
            }],
            ..Figures::default()
        };
        e.step(at(0), Some(f(0)));
        e.step(at(2), Some(f(200)));
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 25);
        e.step(at(4), None);
        e.step(at(6), None);
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 25, "paused");
        // 10,000 connections came during the pause: not a rate of 2,500/s.
        e.step(at(8), Some(f(10_200)));
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 25);
        e.step(at(10), Some(f(10_400)));
        assert_eq!(Estimator::rates(&e.entries)[0].conns, 44);
    }
}
