//! The host's network configuration through iproute2's `ip` (host twins, VIPs on them, the
//! announce table, AF_XDP interfaces): control side only, never on a worker.

/// Runs `ip ARGS...`; the error names the command and carries what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
