//! minik-dns's command line: bad input is refused before anything starts, with a message
//! that says what to give instead. Nothing here touches a network.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_minik-dns")).args(args).output().expect("run minik-dns");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn registration_needs_all_three_flags() {
    let (code, err) = run(&["--kubeconfig", "/nonexistent", "--service", "kube-system/kube-dns"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--service-ip") && err.contains("--advertise-address"), "{err}");
}

#[test]
fn bad_values_name_the_expected_form() {
    let (code, err) = run(&["--upstream", "dns.example"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("IP:PORT"), "{err}");
    let (code, err) = run(&["--service", "kube-dns", "--service-ip", "10.96.0.10", "--advertise-address", "10.0.0.1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NAMESPACE/NAME"), "{err}");
    let (code, err) = run(&["--health-bind", "8080"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("off"), "{err}");
}

#[test]
fn a_bad_cluster_domain_is_refused_with_a_hint() {
    let (code, err) = run(&["--kubeconfig", "/nonexistent", "--cluster-domain", "bad..domain"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cluster.local"), "{err}");
}

#[test]
fn an_unreadable_kubeconfig_is_named() {
    let (code, err) = run(&["--kubeconfig", "/nonexistent/kubeconfig", "--listen", "127.0.0.1:0", "--health-bind", "off"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}
