//! Root integration tests: the `minik-oci` binary drives busybox bundles through the
//! OCI lifecycle, and the container's confinement is checked from inside.

#![allow(clippy::unwrap_used)]

mod common;

use common::{can_run, config, Bundle, HostFile};
use serde_json::{json, Value};

#[test]
fn lifecycle_create_start_state_kill_delete() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let id = b.id("life");
    let pid_file = b.path().join("pid");
    let bundle = b.path().display().to_string();
    b.ok(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        &pid_file.display().to_string(),
        &id,
    ]);
    let st: Value = serde_json::from_str(&b.ok(&["state", &id])).unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle.as_str());
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());

    let again = b.cli(&["create", "--bundle", &bundle, &id]);
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains(&format!("container \"{id}\" already exists")));

    b.ok(&["start", &id]);
    assert_eq!(b.status(&id), "running");
    let e = b.cli(&["start", &id]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr)
        .contains("cannot start a container that is not in created state (status: running)"));

    let ps: Vec<i64> = serde_json::from_str(&b.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![pid]);
    let e = b.cli(&["delete", &id]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not stopped"));

    b.ok(&["kill", &id, "KILL"]);
    b.wait_status(&id, "stopped");
    b.ok(&["delete", &id]);
    let e = b.cli(&["state", &id]);
    assert_eq!(e.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains(&format!("container \"{id}\" does not exist"))
    );
}

#[test]
fn run_returns_the_exit_code() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sh", "-c", "echo out; exit 3"]);
    let (code, out, err) = b.run("exit3");
    assert_eq!(code, 3, "stderr: {err}");
    assert_eq!(out.trim(), "out");
    // run deletes the container afterwards
    let list = b.ok(&["list", "--quiet"]);
    assert!(list.trim().is_empty(), "{list}");
}

const CONFINEMENT: &str = "grep Cap /proc/self/status; grep NoNewPrivs /proc/self/status; \
    echo timer_list=$(cat /proc/timer_list | wc -c); \
    if test -e /proc/kcore; then echo kcore=$(cat /proc/kcore | wc -c); fi; \
    echo acpi=$(ls /proc/acpi | wc -l); \
    if test -e HOSTFILE; then echo host=visible; else echo host=invisible; fi; \
    sh -c 'echo x > /proc/sys/kernel/hostname' 2>&1 || true; \
    grep ' /proc/sys ' /proc/mounts";

fn check_confinement(out: &str, host: &HostFile) {
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(
        out.contains("timer_list=0"),
        "masked /proc/timer_list must be empty: {out}"
    );
    if std::path::Path::new("/proc/kcore").exists() {
        assert!(
            out.contains("kcore=0"),
            "masked /proc/kcore must be empty: {out}"
        );
    }
    assert!(
        out.contains("acpi=0"),
        "masked /proc/acpi must be an empty dir: {out}"
    );
    assert!(
        out.contains("host=invisible"),
        "{} is visible in the container: {out}",
        host.0.display()
    );
    assert!(
        out.contains("Read-only file system"),
        "/proc/sys must be read-only: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" /proc/sys ") && l.contains(" ro,")),
        "{out}"
    );
}

#[test]
fn confinement_caps_nnp_masks_pivot_readonly() {
    if !can_run() {
        return;
    }
    let host = HostFile::new("minik-oci-host-marker");
    let script = CONFINEMENT.replace("HOSTFILE", &host.0.display().to_string());
    let b = Bundle::new(&["sh", "-c", &script]);
    let (code, out, err) = b.run("confine");
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    check_confinement(&out, &host);
}

#[test]
fn default_capabilities_when_config_has_none() {
    if !can_run() {
        return;
    }
    let mut c = config(&["grep", "CapBnd", "/proc/self/status"]);
    c["process"].as_object_mut().unwrap().remove("capabilities");
    let b = Bundle::with_config(c);
    let (code, out, err) = b.run("defcaps");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("00000000a80425fb"), "{out}");
}

#[test]
fn exec_sees_the_containers_hostname_and_pid_namespace() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["sleep", "1000"]);
    let id = b.id("exec");
    b.ok(&[
        "run",
        "--detach",
        "--bundle",
        &b.path().display().to_string(),
        &id,
    ]);
    assert_eq!(b.status(&id), "running");
    let out = b.ok(&[
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep CapBnd /proc/self/status",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("minik-test"));
    assert!(
        lines.next().unwrap_or("").starts_with("sleep 1000"),
        "{out}"
    );
    assert!(out.contains("00000000a80425fb"), "{out}");
    let e = b.cli(&["exec", &id, "--", "sh", "-c", "exit 7"]);
    assert_eq!(e.status.code(), Some(7));
    b.ok(&["delete", "--force", &id]);
    assert!(!b.ok(&["list", "--quiet"]).contains(&id));
}

#[test]
fn errors_are_clear() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["true"]);
    for verb in ["state", "start", "kill", "delete", "ps"] {
        let e = b.cli(&[verb, "no-such-container"]);
        assert_eq!(e.status.code(), Some(1), "{verb}");
        let msg = String::from_utf8_lossy(&e.stderr);
        assert!(
            msg.contains("container \"no-such-container\" does not exist"),
            "{verb}: {msg}"
        );
    }
    let mut c = config(&["true"]);
    c["process"]["args"] = json!([]);
    b.write_config(&c);
    let id = b.id("badcfg");
    let e = b.cli(&["create", "--bundle", &b.path().display().to_string(), &id]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("config.json: process.args is empty"));
    c["process"]["args"] = json!(["no-such-program"]);
    b.write_config(&c);
    let e = b.cli(&["create", "--bundle", &b.path().display().to_string(), &id]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("executable file not found in $PATH"));
    assert!(String::from_utf8_lossy(&b.cli(&["state", &id]).stderr).contains("does not exist"));
    c["process"]["args"] = json!(["true"]);
    c["mounts"][0]["options"] = json!("ro");
    b.write_config(&c);
    let e = b.cli(&["create", "--bundle", &b.path().display().to_string(), &id]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains("config.json: mounts[0].options"), "{msg}");
}

#[test]
fn json_log_gets_the_error() {
    if !can_run() {
        return;
    }
    let b = Bundle::new(&["true"]);
    let log = b.path().join("log.json");
    let e = b.cli(&[
        "--log",
        &log.display().to_string(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert_eq!(e.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"]
        .as_str()
        .unwrap()
        .contains("container \"nope\" does not exist"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}
