//! Ports stopped and started under running workers (the console's `port stop|start`).
//!
//! Workers ask [`PortsQuiet::io_allowed`] at the top of every pass and touch no queue
//! (no rx, no tx) in a pass where it says no, which it does while the forwarding switch
//! is off (the console's `stop`). [`PortsQuiet::idle`] asks each worker to confirm that
//! and waits for every answer: then no queue is used until forwarding is switched on
//! again, and the ports may be stopped and started ([`crate::Port::stop_idle`]).

use crate::QueuesIdle;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One worker's last answer, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Answer(AtomicU64);

/// The workers' forwarding switch and their answers to "are your queues idle?".
#[derive(Debug)]
pub struct PortsQuiet {
    forwarding: Arc<AtomicBool>,
    /// The number of the last question asked.
    asked: AtomicU64,
    /// By worker: the last question it answered from a pass that used no queue.
    answers: Box<[Answer]>,
}

impl PortsQuiet {
    pub fn new(forwarding: Arc<AtomicBool>, workers: usize) -> PortsQuiet {
        PortsQuiet {
            forwarding,
            asked: AtomicU64::new(0),
            answers: (0..workers).map(|_| Answer::default()).collect(),
        }
    }

    /// Worker `me`, at the top of every pass: whether it may use its queues in this pass.
    /// When it may not, it answers the last question asked (after every use of a queue in
    /// its earlier passes). A worker must call no burst function in a pass where this said
    /// no, and must not use a queue outside its passes.
    #[inline]
    pub fn io_allowed(&self, me: usize) -> bool {
        // Reading the question first: a question asked after the switch was seen off
        // makes this pass see it off too.
        let asked = self.asked.load(Ordering::Acquire);
        let on = self.forwarding.load(Ordering::Relaxed);
        if !on {
            if let Some(a) = self.answers.get(me) {
                a.0.store(asked, Ordering::Release);
            }
        }
        on
    }

    /// Control side: waits until every worker has confirmed that it uses no queue, at most
    /// `wait`. Refused while forwarding runs; the caller keeps forwarding off for as long as
    /// it holds the answer.
    pub fn idle(&self, wait: Duration) -> Result<QueuesIdle, String> {
        if self.forwarding.load(Ordering::Relaxed) {
            return Err("packet forwarding runs (stop it first)".into());
        }
        let question = self.asked.fetch_add(1, Ordering::Release) + 1;
        let deadline = Instant::now().checked_add(wait);
        loop {
            let silent = self
                .answers
                .iter()
                .position(|a| a.0.load(Ordering::Acquire) < question);
            let Some(w) = silent else { break };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(format!(
                    "worker {w} did not confirm within {} ms that it left its queues",
                    wait.as_millis()
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Forwarding was off when the question was asked (read above, before the release
        // that publishes the question), so a worker pass that reads the question (acquire)
        // reads forwarding off too and uses no queue (`io_allowed`'s contract). Every
        // worker answered it after all its earlier passes, whose queue calls had returned
        // (release; the acquire loads above make them happen before this point), and uses
        // no queue in a later pass while forwarding stays off, which the caller keeps so
        // while it holds the proof.
        Ok(QueuesIdle(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_waits_for_every_worker_and_is_refused_while_forwarding() {
        let forwarding = Arc::new(AtomicBool::new(true));
        let quiet = Arc::new(PortsQuiet::new(forwarding.clone(), 2));
        assert!(quiet.idle(Duration::from_millis(10)).is_err());
        assert!(quiet.io_allowed(0));
        forwarding.store(false, Ordering::Relaxed);
        // Worker 1 never passes: no proof.
        let e = quiet.idle(Duration::from_millis(20)).unwrap_err();
        assert!(e.starts_with("worker 0 did not confirm"), "{e}");
        let done = Arc::new(AtomicBool::new(false));
        let worker = {
            let (quiet, done) = (quiet.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..100_000 {
                    assert!(!quiet.io_allowed(0) && !quiet.io_allowed(1));
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        };
        assert!(quiet.idle(Duration::from_secs(5)).is_ok());
        done.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        // Answers to an earlier question do not answer a new one.
        let e = quiet.idle(Duration::from_millis(5)).unwrap_err();
        assert!(e.contains("did not confirm"), "{e}");
    }
}
