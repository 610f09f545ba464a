//! keepalived's own sample configurations (Debian's keepalived package ships them in
//! /usr/share/doc/keepalived/samples) and rvs's corpus of operators' set-ups
//! (configs/keepalived/corpus: DR and NAT farms, groups and ranges, IPv6 and Maglev, mail
//! relays with FILE_CHECK, a VRRP director pair, 1.x habits) with keepalived 2.2.7's
//! `keepalived -t` as the reference, run live in a namespace that has the interfaces the
//! files name: every file keepalived accepts, rvs reads too (and rvs reads every file of
//! its own corpus). Skipped, saying so, where keepalived is missing (scripts/setup
//! installs it).

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
    let mut failures_ours = Vec::new();
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
    let ours_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/keepalived/corpus");
    let mut ours: Vec<_> = std::fs::read_dir(&ours_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    ours.sort();
    for f in &ours {
        if let Err(e) = KeepalivedConf::load(f) {
            failures_ours.push(format!("{}: rvs: {e}", f.display()));
        }
    }
    let corpus = ours.len();
    files.extend(ours);
    let (mut accepted, mut both, mut failures) = (0, 0, Vec::new());
    failures.append(&mut failures_ours);
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
    println!(
        "keepalived corpus: {both} of the {accepted} files keepalived accepts read by rvs ({} files: {} samples, {corpus} of rvs's corpus)",
        files.len(),
        files.len() - corpus
    );
    assert!(accepted >= 22, "keepalived accepted only {accepted} files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
