//! Tests with fake plugins: `#!/bin/sh` scripts that record their stdin, environment and
//! call order into a log directory and print canned answers.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;
use crate::cni::codes;

struct Fixture {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    bin2: PathBuf,
    conf: PathBuf,
    cache: PathBuf,
    log: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let f = Fixture {
            bin: root.join("bin"),
            bin2: root.join("bin2"),
            conf: root.join("net.d"),
            cache: root.join("cache"),
            log: root.join("log"),
            _tmp: tmp,
        };
        for d in [&f.bin, &f.bin2, &f.conf, &f.log] {
            fs::create_dir_all(d).expect("mkdir");
        }
        f
    }

    fn exec(&self) -> CniExecutor {
        CniExecutor::new(ExecutorConfig {
            conf_dir: self.conf.clone(),
            plugin_dirs: vec![self.bin.clone(), self.bin2.clone()],
            cache_dir: self.cache.clone(),
        })
    }

    fn script(&self, name: &str, body: &str) {
        let path = self.bin.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write plugin");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A plugin that records every call and prints `add_output` on ADD.
    fn plugin(&self, name: &str, add_output: &str) {
        let log = self.log.display();
        self.script(
            name,
            &format!(
                r#"log='{log}'
cat > "$log/{name}-$CNI_COMMAND-$CNI_CONTAINERID.stdin"
env > "$log/{name}-$CNI_COMMAND-$CNI_CONTAINERID.env"
echo "{name} $CNI_COMMAND $CNI_CONTAINERID" >> "$log/calls"
if [ "$CNI_COMMAND" = ADD ]; then
cat <<'END_OF_RESULT'
{add_output}
END_OF_RESULT
fi
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}'
fi"#
            ),
        );
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log.join("calls")).unwrap_or_default().lines().map(String::from).collect()
    }

    fn stdin(&self, name: &str, cmd: &str, cid: &str) -> Value {
        let text = fs::read_to_string(self.log.join(format!("{name}-{cmd}-{cid}.stdin"))).expect("stdin recorded");
        serde_json::from_str(&text).expect("stdin is JSON")
    }

    fn env(&self, name: &str, cmd: &str, cid: &str) -> HashMap<String, String> {
        let text = fs::read_to_string(self.log.join(format!("{name}-{cmd}-{cid}.env"))).expect("env recorded");
        text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cache_file(&self, net: &str, cid: &str, ifname: &str) -> PathBuf {
        self.cache.join("results").join(format!("{net}-{cid}-{ifname}"))
    }
}

fn result_json(version: &str, ip: &str) -> String {
    json!({
        "cniVersion": version,
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/p"}],
        "ips": [{"address": ip, "gateway": "10.244.1.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}]
    })
    .to_string()
}

fn parsed(s: &str) -> Value {
    serde_json::from_str(s).expect("json")
}

fn list(version: &str, plugins: Value) -> NetConfList {
    let v = json!({"cniVersion": version, "name": "podnet", "plugins": plugins});
    NetConfList::from_bytes(v.to_string().as_bytes()).expect("valid list")
}

fn chain(version: &str) -> NetConfList {
    list(version, json!([{"type": "a", "mtu": 1400}, {"type": "b", "capabilities": {"portMappings": true}}]))
}

fn rt(cid: &str) -> RuntimeConf {
    let mut caps = Map::new();
    caps.insert("portMappings".into(), json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]));
    caps.insert("bandwidth".into(), json!({"ingressRate": 1000}));
    RuntimeConf {
        container_id: cid.into(),
        netns: PathBuf::from(format!("/run/netns/{cid}")),
        ifname: "eth0".into(),
        args: vec![("K8S_POD_NAME".into(), "p".into()), ("IgnoreUnknown".into(), "1".into())],
        capability_args: caps,
    }
}

fn two_plugins(f: &Fixture, version: &str) {
    f.plugin("a", &result_json(version, "10.244.1.5/24"));
    f.plugin("b", &result_json(version, "10.244.1.6/24"));
}

fn get<'m>(env: &'m HashMap<String, String>, k: &str) -> Option<&'m str> {
    env.get(k).map(String::as_str)
}

#[test]
fn add_runs_the_chain_in_order_with_prev_result_and_filtered_runtime_config() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let r = f.exec().add(&chain("1.0.0"), &rt("c1")).expect("ADD");

    assert_eq!(f.calls(), ["a ADD c1", "b ADD c1"]);
    let a_in = f.stdin("a", "ADD", "c1");
    assert_eq!(a_in["name"], json!("podnet"));
    assert_eq!(a_in["cniVersion"], json!("1.0.0"));
    assert_eq!(a_in["mtu"], json!(1400));
    assert!(a_in.get("prevResult").is_none());
    assert!(a_in.get("runtimeConfig").is_none(), "a has no capabilities");
    let b_in = f.stdin("b", "ADD", "c1");
    assert_eq!(b_in["prevResult"], parsed(&result_json("1.0.0", "10.244.1.5/24")));
    assert_eq!(b_in["runtimeConfig"], json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}));

    let env = f.env("a", "ADD", "c1");
    assert_eq!(get(&env, "CNI_COMMAND"), Some("ADD"));
    assert_eq!(get(&env, "CNI_CONTAINERID"), Some("c1"));
    assert_eq!(get(&env, "CNI_NETNS"), Some("/run/netns/c1"));
    assert_eq!(get(&env, "CNI_IFNAME"), Some("eth0"));
    assert_eq!(get(&env, "CNI_ARGS"), Some("K8S_POD_NAME=p;IgnoreUnknown=1"));
    let want_path = format!("{}:{}", f.bin.display(), f.bin2.display());
    assert_eq!(get(&env, "CNI_PATH"), Some(want_path.as_str()));
    assert_eq!(env.get("PATH").cloned(), std::env::var("PATH").ok());
    assert!(!env.keys().any(|k| k.starts_with("CARGO")), "the parent's environment leaked: {env:?}");

    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].address.to_string(), "10.244.1.6/24");
}

#[test]
fn a_result_in_another_version_is_converted_for_the_next_plugin() {
    let f = Fixture::new();
    // The 0.4.0 shape (per-IP "version") from a plugin running in a 1.0.0 list.
    f.plugin("a", &json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}).to_string());
    f.plugin("b", r#"{"ips":[{"address":"10.0.0.3/24"}]}"#);
    let net = list("1.0.0", json!([{"type":"a"},{"type":"b"}]));
    let r = f.exec().add(&net, &rt("c1")).expect("ADD");
    let prev = &f.stdin("b", "ADD", "c1")["prevResult"];
    assert_eq!(prev["cniVersion"], json!("1.0.0"));
    assert!(prev["ips"][0].get("version").is_none());
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.3/24");
    // A result without cniVersion is taken to be of the list's version, and cached so.
    assert_eq!(f.exec().cached_result("podnet", &rt("c1")).expect("read"), Some(r));
    let file = parsed(&fs::read_to_string(f.cache_file("podnet", "c1", "eth0")).expect("cache"));
    assert_eq!(file["result"]["cniVersion"], json!("1.0.0"));
}

#[test]
fn add_caches_in_libcni_format_and_del_uses_then_removes_the_entry() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let net = chain("1.0.0");
    let ex = f.exec();
    let added = ex.add(&net, &rt("c1")).expect("ADD");

    let path = f.cache_file("podnet", "c1", "eth0");
    let entry = parsed(&fs::read_to_string(&path).expect("cache written"));
    assert_eq!(entry["kind"], json!("cniCacheV1"));
    assert_eq!(entry["containerId"], json!("c1"));
    assert_eq!(entry["ifName"], json!("eth0"));
    assert_eq!(entry["networkName"], json!("podnet"));
    assert_eq!(entry["netns"], json!("/run/netns/c1"));
    assert_eq!(entry["cniArgs"], json!([["K8S_POD_NAME", "p"], ["IgnoreUnknown", "1"]]));
    assert_eq!(entry["capabilityArgs"]["bandwidth"], json!({"ingressRate": 1000}));
    let config = serde_json::to_vec(&net).expect("encode");
    assert_eq!(entry["config"], json!(cache::base64(&config)));
    let b_out = parsed(&result_json("1.0.0", "10.244.1.6/24"));
    assert_eq!(entry["result"], b_out);
    assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
    assert_eq!(ex.cached_result("podnet", &rt("c1")).expect("read"), Some(added));
    assert_eq!(
        ex.cached_attachments("podnet").expect("list"),
        [Attachment { container_id: "c1".into(), ifname: "eth0".into() }]
    );
    assert!(ex.cached_attachments("other").expect("list").is_empty());

    ex.del(&net, &rt("c1")).expect("DEL");
    assert_eq!(f.calls()[2..], ["b DEL c1", "a DEL c1"]);
    assert_eq!(f.stdin("a", "DEL", "c1")["prevResult"], b_out);
    assert_eq!(f.stdin("b", "DEL", "c1")["prevResult"], b_out);
    assert!(f.stdin("b", "DEL", "c1").get("runtimeConfig").is_some());
    assert!(!path.exists(), "DEL removes the cache entry");
    assert_eq!(ex.cached_result("podnet", &rt("c1")).expect("read"), None);
    let leftovers: Vec<_> = fs::read_dir(f.cache.join("results")).expect("dir").collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

#[test]
fn del_of_an_unknown_attachment_still_runs_the_plugins() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let r = RuntimeConf { netns: PathBuf::new(), ..rt("ghost") };
    f.exec().del(&chain("1.0.0"), &r).expect("DEL");
    assert_eq!(f.calls(), ["b DEL ghost", "a DEL ghost"]);
    assert!(f.stdin("a", "DEL", "ghost").get("prevResult").is_none());
    assert_eq!(get(&f.env("a", "DEL", "ghost"), "CNI_NETNS"), Some(""));
}

#[test]
fn del_below_0_4_0_sends_no_prev_result_but_drops_the_cache() {
    let f = Fixture::new();
    two_plugins(&f, "0.3.1");
    let net = chain("0.3.1");
    let ex = f.exec();
    ex.add(&net, &rt("c1")).expect("ADD");
    assert!(f.cache_file("podnet", "c1", "eth0").exists());
    ex.del(&net, &rt("c1")).expect("DEL");
    assert!(f.stdin("a", "DEL", "c1").get("prevResult").is_none());
    assert!(!f.cache_file("podnet", "c1", "eth0").exists());
}

#[test]
fn a_failed_del_keeps_the_cache_entry() {
    let f = Fixture::new();
    f.plugin("a", &result_json("1.0.0", "10.0.0.2/24"));
    f.script(
        "b",
        r#"if [ "$CNI_COMMAND" = DEL ]; then echo '{"code":11,"msg":"busy"}'; exit 1; fi
echo '{"cniVersion":"1.0.0"}'"#,
    );
    let net = list("1.0.0", json!([{"type":"a"},{"type":"b"}]));
    let ex = f.exec();
    ex.add(&net, &rt("c1")).expect("ADD");
    let err = ex.del(&net, &rt("c1")).expect_err("DEL fails");
    assert_eq!(err.cni_code(), Some(codes::TRY_AGAIN), "{err}");
    assert!(f.cache_file("podnet", "c1", "eth0").exists());
    assert!(f.calls().iter().all(|c| !c.starts_with("a DEL")), "reverse order: b fails before a runs");
}

#[test]
fn check_is_gated_by_version_cache_and_disable_check() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let ex = f.exec();

    let err = ex.check(&chain("0.3.1"), &rt("c1")).expect_err("no CHECK in 0.3.1");
    assert!(matches!(err, ExecError::NotSupported { command: "CHECK", needs: CniVersion::V0_4_0, .. }), "{err}");
    let err = ex.check(&chain("1.0.0"), &rt("c1")).expect_err("no cache");
    assert!(matches!(err, ExecError::NoCachedResult { .. }), "{err}");
    assert!(f.calls().is_empty());

    ex.add(&chain("1.0.0"), &rt("c1")).expect("ADD");
    ex.check(&chain("1.0.0"), &rt("c1")).expect("CHECK");
    assert_eq!(f.calls()[2..], ["a CHECK c1", "b CHECK c1"]);
    assert_eq!(f.stdin("a", "CHECK", "c1")["prevResult"], parsed(&result_json("1.0.0", "10.244.1.6/24")));

    let mut off = chain("1.0.0");
    off.disable_check = true;
    ex.check(&off, &rt("c1")).expect("disabled CHECK");
    assert_eq!(f.calls().len(), 4);
}

#[test]
fn gc_passes_valid_attachments_and_deletes_stale_cached_ones() {
    let f = Fixture::new();
    two_plugins(&f, "1.1.0");
    let net = chain("1.1.0");
    let ex = f.exec();
    ex.add(&net, &rt("c1")).expect("ADD c1");
    ex.add(&net, &rt("c2")).expect("ADD c2");
    let mut other = chain("1.1.0");
    other.name = "othernet".into();
    ex.add(&other, &rt("c3")).expect("ADD c3");

    let valid = [Attachment { container_id: "c1".into(), ifname: "eth0".into() }];
    ex.gc(&net, &valid).expect("GC");
    assert_eq!(f.calls()[6..], ["b DEL c2", "a DEL c2", "a GC ", "b GC "]);
    // The stale DEL gets what ADD used.
    let del_env = f.env("a", "DEL", "c2");
    assert_eq!(get(&del_env, "CNI_NETNS"), Some("/run/netns/c2"));
    assert_eq!(get(&del_env, "CNI_ARGS"), Some("K8S_POD_NAME=p;IgnoreUnknown=1"));
    assert!(f.stdin("b", "DEL", "c2").get("runtimeConfig").is_some());
    let gc_in = f.stdin("b", "GC", "");
    assert_eq!(gc_in[VALID_ATTACHMENTS_KEY], json!([{"containerID":"c1","ifname":"eth0"}]));
    assert_eq!(gc_in["name"], json!("podnet"));
    assert!(gc_in.get("prevResult").is_none() && gc_in.get("runtimeConfig").is_none());
    assert_eq!(get(&f.env("a", "GC", ""), "CNI_COMMAND"), Some("GC"));

    assert_eq!(ex.cached_attachments("podnet").expect("list"), valid);
    assert!(!f.cache_file("podnet", "c2", "eth0").exists());
    assert!(f.cache_file("othernet", "c3", "eth0").exists(), "other networks' entries are untouched");
}

#[test]
fn gc_below_1_1_0_only_deletes_stale_entries_and_disable_gc_does_nothing() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let ex = f.exec();
    let mut off = chain("1.0.0");
    off.disable_gc = true;
    ex.add(&off, &rt("c1")).expect("ADD");
    ex.gc(&off, &[]).expect("GC disabled");
    assert_eq!(f.calls().len(), 2);
    assert!(f.cache_file("podnet", "c1", "eth0").exists());

    ex.gc(&chain("1.0.0"), &[]).expect("GC");
    assert_eq!(f.calls()[2..], ["b DEL c1", "a DEL c1"], "no GC verb below 1.1.0");
    assert!(!f.cache_file("podnet", "c1", "eth0").exists());
}

#[test]
fn gc_collects_failures_and_keeps_going() {
    let f = Fixture::new();
    f.plugin("a", &result_json("1.1.0", "10.0.0.2/24"));
    f.script("b", r#"if [ "$CNI_COMMAND" = GC ]; then echo '{"code":100,"msg":"nft failed"}'; exit 1; fi"#);
    let net = list("1.1.0", json!([{"type":"b"},{"type":"a"},{"type":"missing"}]));
    let err = f.exec().gc(&net, &[]).expect_err("GC fails");
    let ExecError::Gc { errors, .. } = &err else { panic!("not a GC error: {err}") };
    assert_eq!(errors.len(), 2, "{err}");
    assert_eq!(errors[0].cni_code(), Some(codes::INTERNAL));
    assert!(matches!(&errors[1], ExecError::PluginNotFound { plugin, .. } if plugin == "missing"));
    assert!(err.to_string().contains("nft failed"), "{err}");
    assert_eq!(f.calls(), ["a GC "], "a still ran after b failed");
}

#[test]
fn status_runs_each_plugin_from_1_1_0_only() {
    let f = Fixture::new();
    two_plugins(&f, "1.1.0");
    let ex = f.exec();
    ex.status(&chain("1.0.0")).expect("no-op");
    assert!(f.calls().is_empty());
    ex.status(&chain("1.1.0")).expect("STATUS");
    assert_eq!(f.calls(), ["a STATUS ", "b STATUS "]);
    assert_eq!(f.stdin("a", "STATUS", "")["cniVersion"], json!("1.1.0"));

    f.script("b", r#"echo '{"cniVersion":"1.1.0","code":50,"msg":"no IPs left"}'; exit 1"#);
    let err = ex.status(&chain("1.1.0")).expect_err("not available");
    assert_eq!(err.cni_code(), Some(codes::NOT_AVAILABLE), "{err}");
}

#[test]
fn a_plugin_cni_error_is_surfaced_with_its_code_and_nothing_is_cached() {
    let f = Fixture::new();
    f.plugin("a", &result_json("1.0.0", "10.0.0.2/24"));
    f.script("b", r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"no prefix"}'; exit 1"#);
    let net = list("1.0.0", json!([{"type":"a"},{"type":"b"}]));
    let err = f.exec().add(&net, &rt("c1")).expect_err("ADD fails");
    match &err {
        ExecError::Plugin { plugin, command, error } => {
            assert_eq!((plugin.as_str(), *command), ("b", "ADD"));
            assert_eq!(error.code, codes::INVALID_CONFIG);
            assert_eq!(error.details, "no prefix");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("bad subnet"), "{err}");
    assert!(!f.cache_file("podnet", "c1", "eth0").exists());
    assert_eq!(f.calls(), ["a ADD c1"], "no rollback: a is left for the runtime's DEL");
}

#[test]
fn a_failure_without_cni_error_reports_status_and_stderr() {
    let f = Fixture::new();
    f.script("a", "echo 'panic: oops' >&2; echo 'not json'; exit 3");
    let err = f.exec().add(&list("1.0.0", json!([{"type":"a"}])), &rt("c1")).expect_err("fails");
    match &err {
        ExecError::PluginFailed { status, stderr, stdout, .. } => {
            assert!(status.contains('3'), "{status}");
            assert_eq!(stderr, "panic: oops");
            assert_eq!(stdout, "not json");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn unusable_add_output_is_bad_output() {
    let f = Fixture::new();
    f.script("a", "exit 0");
    let err = f.exec().add(&list("1.0.0", json!([{"type":"a"}])), &rt("c1")).expect_err("no result");
    assert!(matches!(err, ExecError::BadOutput { command: "ADD", .. }), "{err}");
    f.script("a", r#"echo '{"ips":[{"address":"nonsense"}]}'"#);
    let err = f.exec().add(&list("1.0.0", json!([{"type":"a"}])), &rt("c1")).expect_err("bad result");
    assert!(matches!(err, ExecError::BadOutput { .. }), "{err}");
}

#[test]
fn a_missing_plugin_names_the_searched_dirs_and_nothing_runs() {
    let f = Fixture::new();
    f.plugin("a", &result_json("1.0.0", "10.0.0.2/24"));
    let net = list("1.0.0", json!([{"type":"a"},{"type":"nope"}]));
    let err = f.exec().add(&net, &rt("c1")).expect_err("missing");
    let msg = err.to_string();
    assert!(matches!(&err, ExecError::PluginNotFound { searched, .. } if searched.len() == 2), "{msg}");
    assert!(msg.contains("\"nope\""), "{msg}");
    assert!(msg.contains(&*f.bin.to_string_lossy()) && msg.contains(&*f.bin2.to_string_lossy()), "{msg}");
    assert!(f.calls().is_empty(), "plugins are resolved before the first runs");
    // A plugin in the second directory is found.
    fs::rename(f.bin.join("a"), f.bin2.join("nope")).expect("move");
    f.plugin("a", &result_json("1.0.0", "10.0.0.2/24"));
    f.exec().add(&net, &rt("c1")).expect("found in bin2");
}

#[test]
fn invalid_runtime_conf_is_rejected_before_any_plugin_runs() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let ex = f.exec();
    let net = chain("1.0.0");
    for bad in [
        RuntimeConf { ifname: "a/b".into(), ..rt("c1") },
        RuntimeConf { ifname: String::new(), ..rt("c1") },
        RuntimeConf { container_id: "../x".into(), ..rt("c1") },
        RuntimeConf { netns: PathBuf::new(), ..rt("c1") },
        RuntimeConf { args: vec![("K".into(), "a;b".into())], ..rt("c1") },
    ] {
        let err = ex.add(&net, &bad).expect_err("invalid");
        assert_eq!(err.cni_code(), Some(codes::INVALID_ENV), "{err}");
    }
    let err = ex.add(&list("1.0.0", json!([{"type":"../a"}])), &rt("c1")).expect_err("type with a slash");
    assert_eq!(err.cni_code(), Some(codes::INVALID_CONFIG), "{err}");
    assert!(f.calls().is_empty());
}

#[test]
fn load_networks_sorts_by_file_name_and_names_bad_files() {
    let f = Fixture::new();
    let ex = f.exec();
    assert!(ex.load_networks().expect("empty dir").is_empty());
    let conflist = |name: &str| json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"a"}]}).to_string();
    fs::write(f.conf.join("20-b.conflist"), conflist("b")).expect("write");
    fs::write(f.conf.join("10-a.conf"), r#"{"cniVersion":"1.0.0","name":"a","type":"bridge"}"#).expect("write");
    fs::write(f.conf.join("30-c.json"), conflist("c")).expect("write");
    fs::write(f.conf.join("05-skip.txt"), "not a config").expect("write");
    fs::create_dir(f.conf.join("01-dir.conf")).expect("mkdir");
    let names: Vec<String> = ex.load_networks().expect("load").into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["a", "b", "c"]);

    // find_network prefers a .conflist over a .conf of the same name.
    let a2 = json!({"cniVersion":"0.4.0","name":"a","plugins":[{"type":"x"}]}).to_string();
    fs::write(f.conf.join("50-a.conflist"), a2).expect("write");
    assert_eq!(ex.find_network("a").expect("find").cni_version, "0.4.0");
    assert_eq!(ex.find_network("c").expect("find").name, "c");
    let err = ex.find_network("zzz").expect_err("absent");
    assert!(matches!(err, ExecError::NetworkNotFound { .. }) && err.to_string().contains("zzz"), "{err}");

    fs::write(f.conf.join("15-bad.conflist"), "{ nope").expect("write");
    let err = ex.load_networks().expect_err("bad file");
    assert!(matches!(&err, ExecError::BadConfigFile { path, .. } if path.ends_with("15-bad.conflist")), "{err}");
    assert!(err.to_string().contains("15-bad.conflist"), "{err}");

    let gone = CniExecutor::new(ExecutorConfig { conf_dir: f.conf.join("missing"), ..f.exec().config().clone() });
    assert!(gone.load_networks().expect("missing dir").is_empty());
}

#[test]
fn plugin_versions_runs_the_version_verb() {
    let f = Fixture::new();
    f.plugin("a", "");
    let info = f.exec().plugin_versions("a").expect("VERSION");
    assert_eq!(info.supported_versions, ["0.4.0", "1.0.0", "1.1.0"]);
    assert_eq!(f.stdin("a", "VERSION", ""), json!({"cniVersion":"1.1.0"}));
    let env = f.env("a", "VERSION", "");
    assert_eq!(get(&env, "CNI_COMMAND"), Some("VERSION"));
    assert_eq!(get(&env, "CNI_NETNS"), Some("dummy"));
    f.script("b", "echo garbage");
    assert!(matches!(f.exec().plugin_versions("b"), Err(ExecError::BadOutput { command: "VERSION", .. })));
}

#[test]
fn an_unreadable_cache_entry_fails_check_and_is_dropped_by_del() {
    let f = Fixture::new();
    two_plugins(&f, "1.0.0");
    let ex = f.exec();
    let path = f.cache_file("podnet", "c1", "eth0");
    fs::create_dir_all(f.cache.join("results")).expect("mkdir");
    fs::write(&path, "{ truncated").expect("write");
    assert!(matches!(ex.check(&chain("1.0.0"), &rt("c1")), Err(ExecError::BadCache { .. })));
    assert!(matches!(ex.cached_result("podnet", &rt("c1")), Err(ExecError::BadCache { .. })));
    assert!(ex.cached_attachments("podnet").expect("list skips it").is_empty());
    ex.del(&chain("1.0.0"), &rt("c1")).expect("DEL");
    assert!(f.stdin("a", "DEL", "c1").get("prevResult").is_none());
    assert!(!path.exists());
    // A legacy cache file (a bare result) is still read.
    fs::write(&path, result_json("1.0.0", "10.9.9.9/24")).expect("write");
    let r = ex.cached_result("podnet", &rt("c1")).expect("legacy").expect("some");
    assert_eq!(r.ips[0].address.to_string(), "10.9.9.9/24");
}

#[test]
fn base64_matches_the_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, want) in vectors {
        assert_eq!(cache::base64(input.as_bytes()), want);
    }
    assert_eq!(cache::base64(&[0xff, 0xfe, 0xfd]), "//79");
}
