//! Merging an image's config with a pod's container spec the Kubernetes way: which of
//! Entrypoint/Cmd/command/args run, `$(VAR)` expansion, environment and working
//! directory.

use crate::layout::ImageConfig;

/// The `PATH` a container gets when neither the image nor the pod sets one (the same
/// as containerd's and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a container runs: the merge of its image's config and its pod spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The full argv (`args[0]` is the program).
    pub args: Vec<String>,
    /// `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// The working directory (absolute; `/` by default).
    pub working_dir: String,
    /// The image's `User` (the pod's `securityContext` is the kubelet's to apply).
    pub user: Option<String>,
}

/// Merges an image config with a container's `command`, `args`, `env` and
/// `workingDir` as Kubernetes does:
///
/// * `command` set: it runs with `args`; the image's Entrypoint **and** Cmd are ignored;
/// * only `args` set: the image's Entrypoint runs with `args` (Cmd is ignored);
/// * neither: the image's Entrypoint runs with its Cmd;
/// * `$(VAR)` in `command` and `args` expands to the pod env's `VAR` (`$$` is a literal
///   `$`; unknown names stay as written), as the kubelet does — env values themselves
///   are not expanded here: pass them already resolved (see [`expand`]);
/// * env: the image's env, each key overridden by the pod's env, the pod's other keys
///   appended in their order; `PATH` ([`DEFAULT_PATH`]) first when neither sets it;
/// * working directory: the pod's, else the image's, else `/`.
pub fn merge_command(
    image: &ImageConfig,
    command: &[String],
    args: &[String],
    env: &[(String, String)],
    working_dir: Option<&str>,
) -> Command {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let exp = |v: &[String]| v.iter().map(|s| expand(s, lookup)).collect::<Vec<_>>();
    let argv = if !command.is_empty() {
        let mut a = exp(command);
        a.extend(exp(args));
        a
    } else if !args.is_empty() {
        let mut a = image.entrypoint.clone();
        a.extend(exp(args));
        a
    } else {
        let mut a = image.entrypoint.clone();
        a.extend(image.cmd.iter().cloned());
        a
    };

    let mut vars: Vec<(String, String)> = image
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (k, v) in env {
        match vars.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => vars.push((k.clone(), v.clone())),
        }
    }
    if !vars.iter().any(|(k, _)| k == "PATH") {
        vars.insert(0, ("PATH".to_string(), DEFAULT_PATH.to_string()));
    }

    let working_dir = working_dir
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());

    Command {
        args: argv,
        env: vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir,
        user: image.user.clone(),
    }
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes `lookup(NAME)`, or stays
/// `$(NAME)` when that is `None`; `$$` becomes `$`; any other `$` stays. The kubelet
/// uses it for `command`, `args` and env `value`s (each against the env vars defined
/// before it).
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: s(&["/bin/api"]),
            cmd: s(&["--port", "8080"]),
            env: s(&["PATH=/opt/bin:/bin", "MODE=prod", "EMPTY="]),
            working_dir: Some("/srv".to_string()),
            user: Some("1000".to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_table() {
        let img = image();
        // (command, args, expected argv)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &["/bin/api", "--port", "8080"]),
            (&[], &["--port", "9090"], &["/bin/api", "--port", "9090"]),
            (&["/bin/sh", "-c"], &[], &["/bin/sh", "-c"]),
            (
                &["/bin/sh"],
                &["-c", "echo hi"],
                &["/bin/sh", "-c", "echo hi"],
            ),
        ];
        for (command, args, want) in cases {
            let c = merge_command(&img, &s(command), &s(args), &[], None);
            assert_eq!(c.args, s(want), "command={command:?} args={args:?}");
        }
        // An image with only Cmd, no Entrypoint.
        let cmd_only = ImageConfig {
            cmd: s(&["/bin/sh"]),
            ..Default::default()
        };
        assert_eq!(
            merge_command(&cmd_only, &[], &[], &[], None).args,
            ["/bin/sh"]
        );
        // args without command replace Cmd, which then is no program at all.
        assert_eq!(
            merge_command(&cmd_only, &[], &s(&["-c", "x"]), &[], None).args,
            ["-c", "x"]
        );
        assert!(merge_command(&ImageConfig::default(), &[], &[], &[], None)
            .args
            .is_empty());
    }

    #[test]
    fn env_merge() {
        let img = image();
        let pod = vec![
            ("MODE".to_string(), "dev".to_string()),
            ("NEW".to_string(), "1".to_string()),
        ];
        let c = merge_command(&img, &[], &[], &pod, None);
        assert_eq!(c.env, ["PATH=/opt/bin:/bin", "MODE=dev", "EMPTY=", "NEW=1"]);

        let bare = ImageConfig::default();
        let c = merge_command(&bare, &[], &[], &pod, None);
        assert_eq!(
            c.env,
            [
                format!("PATH={DEFAULT_PATH}"),
                "MODE=dev".into(),
                "NEW=1".into()
            ]
        );

        let pod_path = vec![("PATH".to_string(), "/x".to_string())];
        assert_eq!(
            merge_command(&bare, &[], &[], &pod_path, None).env,
            ["PATH=/x"]
        );
    }

    #[test]
    fn working_dir_and_user() {
        let img = image();
        assert_eq!(
            merge_command(&img, &[], &[], &[], Some("/data")).working_dir,
            "/data"
        );
        assert_eq!(merge_command(&img, &[], &[], &[], None).working_dir, "/srv");
        assert_eq!(
            merge_command(&img, &[], &[], &[], Some("")).working_dir,
            "/srv"
        );
        let bare = ImageConfig::default();
        let c = merge_command(&bare, &[], &[], &[], None);
        assert_eq!(c.working_dir, "/");
        assert_eq!(c.user, None);
        assert_eq!(
            merge_command(&img, &[], &[], &[], None).user.as_deref(),
            Some("1000")
        );
    }

    #[test]
    fn expansion_in_command_and_args() {
        let img = image();
        let pod = vec![
            ("PORT".to_string(), "9090".to_string()),
            ("NAME".to_string(), "api".to_string()),
        ];
        let c = merge_command(
            &img,
            &s(&["/bin/$(NAME)"]),
            &s(&["--port=$(PORT)", "$(MISSING)", "$$(PORT)", "a$b", "$(open"]),
            &pod,
            None,
        );
        assert_eq!(
            c.args,
            [
                "/bin/api",
                "--port=9090",
                "$(MISSING)",
                "$(PORT)",
                "a$b",
                "$(open"
            ]
        );
        // The image's own Entrypoint/Cmd are never expanded.
        let img2 = ImageConfig {
            entrypoint: s(&["echo", "$(PORT)"]),
            ..Default::default()
        };
        assert_eq!(
            merge_command(&img2, &[], &[], &pod, None).args,
            ["echo", "$(PORT)"]
        );
    }

    #[test]
    fn expand_rules() {
        let f = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)$(A)", f), "xx");
        assert_eq!(expand("$$", f), "$");
        assert_eq!(expand("$$$(A)", f), "$x");
        assert_eq!(expand("$", f), "$");
        assert_eq!(expand("é$(A)é$", f), "éxé$");
        assert_eq!(expand("$()", f), "$()");
    }
}
