//! keepalived's own sample configurations (Debian's keepalived package ships them in
//! /usr/share/doc/keepalived/samples) with keepalived 2.2.7's `keepalived -t` as the
//! reference, run live in a namespace that has the interfaces the samples name: every file
//! keepalived accepts, rvs reads too. Skipped, saying so, where keepalived or its samples
//! are missing (scripts/setup installs them).

use rvs_control::keepalived::KeepalivedConf;
use rvs_testkit::netns::Netns;
use std::path::Path;

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

#[test]
fn every_sample_keepalived_accepts_rvs_reads() {
    let dir = Path::new(SAMPLES);
    let has_keepalived = std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_ok();
    if !dir.is_dir() || !has_keepalived {
        eprintln!("keepalived corpus: skipped (no keepalived or no {SAMPLES})");
        return;
    }
    // The interfaces the samples name exist here (veth: this kernel has no dummy), so
    // keepalived judges the rest.
    let lab = Netns::new("rvskc");
    for i in 0..4 {
        assert!(lab.exec(&format!(
            "ip link add eth{i} type veth peer name peer{i} && ip link set eth{i} up"
        )));
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived.conf."))
        })
        .collect();
    files.sort();
    let (mut accepted, mut both, mut failures) = (0, 0, Vec::new());
    for f in &files {
        let keepalived_ok = lab.exec(&format!("keepalived -t -f {} >/dev/null 2>&1", f.display()));
        let rvs = KeepalivedConf::load(f);
        if keepalived_ok {
            accepted += 1;
            match &rvs {
                Ok(_) => both += 1,
                Err(e) => {
                    failures.push(format!("{}: keepalived accepts it, rvs: {e}", f.display()))
                }
            }
        }
        eprintln!(
            "{}: keepalived {}, rvs {}",
            f.display(),
            if keepalived_ok { "accepts" } else { "refuses" },
            match &rvs {
                Ok(k) => format!("reads it ({} warning(s))", k.warnings.len()),
                Err(e) => format!("refuses it: {e}"),
            }
        );
    }
    eprintln!("keepalived corpus: {both} of the {accepted} samples keepalived accepts read by rvs ({} files)", files.len());
    assert!(
        accepted >= 15,
        "keepalived accepted only {accepted} samples"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
