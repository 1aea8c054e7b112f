//! Bad input gets the real cluster's kubectl error, naming the field or the line:
//! malformed YAML, unknown fields with `--validate=strict` (top-level and nested, in
//! create and apply), an apiVersion or kind the server does not serve, out-of-range
//! ports, a missing required field, an invalid name or label, and a request with no
//! credentials (401 Status).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{stderr, ApiServer};

/// Write `manifest` next to the server's data dir and run `kubectl VERB [flags] -f FILE`;
/// it must fail, and its stderr is returned.
fn rejected(api: &ApiServer, name: &str, manifest: &str, args: &[&str]) -> String {
    let path = api.data_dir.with_extension(format!("{name}.yaml"));
    std::fs::write(&path, manifest).expect("write manifest");
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["-f", path.to_str().expect("utf8")]);
    let out = api.kubectl(&all);
    assert!(
        !out.status.success(),
        "kubectl {all:?} accepted {name}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(&out)
}

const RS_WITH_TYPOS: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: typo}
spec:
  replicas: 1
  replica: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers: [{name: api, image: demo-api, portz: 1}]
";

#[test]
fn bad_manifests_name_what_is_wrong() {
    minik_tests::require_sandbox();
    let dir = tempfile::tempdir().expect("tmp");
    let api = ApiServer::start(&dir.path().join("api"), None);

    // Malformed YAML: kubectl names the file and the line.
    let e = rejected(
        &api,
        "malformed",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n data: [x\n",
        &["apply"],
    );
    assert!(
        e.contains("error parsing") && e.contains("malformed.yaml") && e.contains("line 4"),
        "{e}"
    );

    // Unknown fields with --validate=strict: every one named by its path.
    for verb in ["create", "apply"] {
        let e = rejected(&api, "typos", RS_WITH_TYPOS, &[verb, "--validate=strict"]);
        assert!(
            e.contains("(BadRequest)")
                && e.contains("strict decoding error")
                && e.contains("unknown field \"spec.replica\"")
                && e.contains("unknown field \"spec.template.spec.containers[0].portz\""),
            "{verb}: {e}"
        );
    }
    let e = rejected(
        &api,
        "toplevel",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u}\ndata: {a: b}\nbogus: 1\n",
        &["create", "--validate=strict"],
    );
    assert!(e.contains("unknown field \"bogus\""), "{e}");

    // An apiVersion that does not exist, and a kind that is not in its version.
    let e = rejected(
        &api,
        "wrongversion",
        "apiVersion: apps/v2\nkind: ReplicaSet\nmetadata: {name: r}\nspec: {}\n",
        &["apply"],
    );
    assert!(
        e.contains("no matches for kind \"ReplicaSet\" in version \"apps/v2\""),
        "{e}"
    );
    let e = rejected(
        &api,
        "wrongkind",
        "apiVersion: v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec: {}\n",
        &["create"],
    );
    assert!(
        e.contains("no matches for kind \"ReplicaSet\" in version \"v1\""),
        "{e}"
    );

    // Field validation: 422 Invalid naming the field.
    let e = rejected(
        &api,
        "nodeport",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 40000}]\n",
        &["apply"],
    );
    assert!(
        e.contains("spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{e}"
    );
    let e = rejected(
        &api,
        "port0",
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 0}]\n",
        &["apply"],
    );
    assert!(
        e.contains("spec.ports[0].port: Invalid value: 0: must be between 1 and 65535"),
        "{e}"
    );
    let e = rejected(
        &api,
        "noimage",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n",
        &["apply"],
    );
    assert!(
        e.contains("The Pod \"p\" is invalid: spec.containers[0].image: Required value"),
        "{e}"
    );
    let e = rejected(
        &api,
        "label",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: l, labels: {\"bad key!\": v}}\n",
        &["apply"],
    );
    assert!(
        e.contains("metadata.labels: Invalid value: \"bad key!\""),
        "{e}"
    );
    let e = api.fails(&["create", "configmap", "Bad_Name"]);
    assert!(
        e.contains("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{e}"
    );
    // Nothing of the above was stored.
    let names = api.ok(&["get", "configmaps,services,pods,replicasets", "-o", "name"]);
    for bad in ["typo", "configmap/u", "service/s", "pod/p", "configmap/l"] {
        assert!(!names.contains(bad), "{bad} stored: {names}");
    }

    // No credentials at all: 401 with an Unauthorized Status (curl is in Debian's base
    // image; kubectl itself would prompt for a password instead of sending nothing).
    let url = format!(
        "https://127.0.0.1:{}/api/v1/namespaces/default/pods",
        api.port
    );
    let out = std::process::Command::new("curl")
        .args(["-sk", "-w", "\nHTTP %{http_code}", &url])
        .output()
        .expect("curl (Debian's curl package) is needed for the anonymous-request check");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("HTTP 401")
            && body.contains("\"reason\":\"Unauthorized\"")
            && body.contains("\"kind\":\"Status\""),
        "{body}"
    );
}
