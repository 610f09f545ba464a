//! EAL command lines, built in one place for the daemon, the benchmark, testpmd runs and
//! the tests.

/// An EAL command line (without a program name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    /// `-l` list, or the `--lcores` form (`0@0,1@1`) when `placed`.
    pub lcores: String,
    pub placed: bool,
    pub main_lcore: Option<u32>,
    pub file_prefix: String,
    pub log_level: String,
    pub hugepages: bool,
    /// Megabytes of memory (`-m`); without hugepages it defaults to 512.
    pub memory_mb: Option<u32>,
    /// PCI devices to allow-list; none means `--no-pci`.
    pub pci: Vec<String>,
    pub vdevs: Vec<String>,
    pub telemetry: bool,
    pub extra: Vec<String>,
}

impl EalArgs {
    /// Lcores `lcores` (`-l` form), no hugepages, no PCI, no telemetry, log level notice.
    pub fn new(lcores: impl Into<String>, file_prefix: impl Into<String>) -> EalArgs {
        EalArgs {
            lcores: lcores.into(),
            placed: false,
            main_lcore: None,
            file_prefix: file_prefix.into(),
            log_level: "notice".into(),
            hugepages: false,
            memory_mb: None,
            pci: Vec::new(),
            vdevs: Vec::new(),
            telemetry: false,
            extra: Vec::new(),
        }
    }

    /// For a test or a benchmark: `--no-huge` with `memory_mb`, errors only, and a file
    /// prefix unique to this process (`rvs-{name}-{pid}`).
    pub fn scratch(lcores: &str, name: &str, memory_mb: u32) -> EalArgs {
        EalArgs {
            log_level: "error".into(),
            memory_mb: Some(memory_mb),
            ..EalArgs::new(lcores, format!("rvs-{name}-{}", std::process::id()))
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let flag = if self.placed { "--lcores" } else { "-l" };
        a.extend([flag.into(), self.lcores.clone()]);
        if let Some(m) = self.main_lcore {
            a.extend(["--main-lcore".into(), m.to_string()]);
        }
        a.extend(["--file-prefix".into(), self.file_prefix.clone()]);
        a.extend(["--log-level".into(), self.log_level.clone()]);
        if !self.telemetry {
            a.push("--no-telemetry".into());
        }
        if self.hugepages {
            a.push("--huge-unlink".into());
            if let Some(mb) = self.memory_mb {
                a.extend(["-m".into(), mb.to_string()]);
            }
        } else {
            let mb = self.memory_mb.unwrap_or(512);
            a.extend([
                "--no-huge".into(),
                "-m".into(),
                mb.to_string(),
                "--no-shconf".into(),
            ]);
        }
        if self.pci.is_empty() {
            a.push("--no-pci".into());
        }
        for dev in &self.pci {
            a.extend(["-a".into(), dev.clone()]);
        }
        for v in &self.vdevs {
            a.extend(["--vdev".into(), v.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_lines_need_no_hugepages_and_no_pci() {
        let a = EalArgs::scratch("0,1", "t", 256).to_vec().join(" ");
        let pid = std::process::id();
        assert_eq!(
            a,
            format!("-l 0,1 --file-prefix rvs-t-{pid} --log-level error --no-telemetry --no-huge -m 256 --no-shconf --no-pci")
        );
    }

    #[test]
    fn placement_main_lcore_pci_and_vdevs() {
        let mut e = EalArgs::new("0@0,1@1", "p");
        e.placed = true;
        e.main_lcore = Some(0);
        e.hugepages = true;
        e.pci = vec!["0000:03:00.0".into()];
        e.vdevs = vec!["net_ring0".into()];
        assert_eq!(
            e.to_vec().join(" "),
            "--lcores 0@0,1@1 --main-lcore 0 --file-prefix p --log-level notice --no-telemetry --huge-unlink -a 0000:03:00.0 --vdev net_ring0"
        );
    }
}
