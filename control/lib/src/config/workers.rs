//! The `[[worker]]` sections: which lcore polls which queues.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorker {
    pub(super) lcore: Spanned<u32>,
    pub(super) rx: Spanned<Vec<String>>,
}

/// A validated worker: its lcore and the (port index, rx queue) pairs it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub lcore: u32,
    pub rx: Vec<(usize, u16)>,
}

/// testpmd's `--nb-cores=N` against the configuration: `N` forwarding cores out of the
/// `available` worker lcores; with `[[worker]]` sections, their own count only. Returns `N`.
pub(super) fn check_nb_cores(
    source: &Source,
    lcores_span: std::ops::Range<usize>,
    raw: &[RawWorker],
    n: usize,
    available: usize,
) -> Result<usize, ConfigError> {
    if n == 0 || n > available {
        return Err(source.error(
            lcores_span,
            "eal.lcores",
            format!(
                "--nb-cores={n}: nb-cores should be > 0 and <= {available} (the worker lcores here; the first lcore is the main one)"
            ),
        ));
    }
    if let Some(first) = raw.first().filter(|_| n != raw.len()) {
        return Err(source.error(
            first.lcore.span(),
            "worker",
            format!(
                "--nb-cores={n}: the [[worker]] sections give {} forwarding core(s), each with its queues; with them --nb-cores takes that count only (without them the queues spread over the first N worker lcores)",
                raw.len()
            ),
        ));
    }
    Ok(n)
}

/// `forwarding`: how many of the worker lcores (after the main one) forward when the
/// workers are not listed (`--nb-cores`; all of them by default).
pub(super) fn validate_workers(
    source: &Source,
    (eal, forwarding): (&EalConfig, usize),
    ports: &[PortConfig],
    raw_ports: &[RawPort],
    raw: Vec<RawWorker>,
) -> Result<Vec<WorkerConfig>, ConfigError> {
    let worker_lcores = &eal.lcores[1..];
    if raw.is_empty() {
        // Every rx queue, round robin over the forwarding lcores.
        let mut workers: Vec<WorkerConfig> = worker_lcores
            .iter()
            .take(forwarding)
            .map(|&lcore| WorkerConfig {
                lcore,
                rx: Vec::new(),
            })
            .collect();
        let all = ports
            .iter()
            .enumerate()
            .flat_map(|(p, cfg)| (0..cfg.rx_queues).map(move |q| (p, q)));
        let n = workers.len();
        for (k, pq) in all.enumerate() {
            workers[k % n].rx.push(pq);
        }
        workers.retain(|w| !w.rx.is_empty());
        return Ok(workers);
    }
    let index_of: HashMap<&str, usize> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut owner: HashMap<(usize, u16), usize> = HashMap::new();
    let mut lcores_seen = BTreeSet::new();
    let mut workers = Vec::new();
    for (w, rw) in raw.into_iter().enumerate() {
        let lcore = *rw.lcore.get_ref();
        let field = format!("worker[{w}].lcore");
        if lcore == eal.lcores[0] {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} is the main lcore (first of eal.lcores)"),
            ));
        }
        if !worker_lcores.contains(&lcore) {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} is not in eal.lcores"),
            ));
        }
        if !lcores_seen.insert(lcore) {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} has two workers"),
            ));
        }
        let field = format!("worker[{w}].rx");
        if rw.rx.get_ref().is_empty() {
            return Err(source.error(
                rw.rx.span(),
                field,
                "a worker polls at least one \"port:queue\"",
            ));
        }
        let mut rx = Vec::new();
        for item in rw.rx.get_ref() {
            let bad = |m: String| source.error(rw.rx.span(), field.clone(), m);
            let (name, queues) = match item.split_once(':') {
                Some((n, q)) => {
                    let q: u16 = q
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("{item:?}: queue is not a number")))?;
                    (n.trim(), Some(q))
                }
                None => (item.trim(), None),
            };
            let p = *index_of
                .get(name)
                .ok_or_else(|| bad(format!("{item:?}: no port named {name:?}")))?;
            let qs: Vec<u16> = match queues {
                Some(q) if q >= ports[p].rx_queues => {
                    return Err(bad(format!(
                        "{item:?}: port {name:?} has {} rx queue(s)",
                        ports[p].rx_queues
                    )))
                }
                Some(q) => vec![q],
                None => (0..ports[p].rx_queues).collect(),
            };
            for q in qs {
                if let Some(other) = owner.insert((p, q), w) {
                    return Err(bad(format!(
                        "{name}:{q} is already polled by worker[{other}]"
                    )));
                }
                rx.push((p, q));
            }
        }
        workers.push(WorkerConfig { lcore, rx });
    }
    for (p, cfg) in ports.iter().enumerate() {
        for q in 0..cfg.rx_queues {
            if !owner.contains_key(&(p, q)) {
                return Err(source.error(
                    raw_ports[p]
                        .rx_queues
                        .as_ref()
                        .map_or(raw_ports[p].device.span(), |q| q.span()),
                    format!("port[{p}].rx_queues"),
                    format!("rx queue {}:{q} is polled by no worker", cfg.name),
                ));
            }
        }
    }
    Ok(workers)
}
