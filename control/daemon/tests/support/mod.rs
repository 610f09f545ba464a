//! What the reference tests share: the stand-in for the kernel's IPVS that Debian's
//! ipvsadm and keepalived program through LD_PRELOAD (`ipvsadm_reference/ipvs_kernel.c`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the stand-in as `dir/ipvs_kernel.so` with `cc`; None when it cannot.
pub fn build_stand_in(dir: &Path) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ipvsadm_reference/ipvs_kernel.c");
    let lib = dir.join("ipvs_kernel.so");
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(lib)
}
