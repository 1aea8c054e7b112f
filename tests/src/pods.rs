//! Test pods the cluster-level tests share: a busybox pod pinned to a node that answers
//! `GET /cgi-bin/ip` (port 8080) with its client's address, so a test can tell NAT from
//! no NAT, and a busybox pod that only sleeps (a client to `kubectl exec` into).

/// A pod pinned to `node` whose httpd answers `/cgi-bin/ip` with the client's address.
pub fn who_am_i_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /w/cgi-bin; printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /w/cgi-bin/ip; chmod +x /w/cgi-bin/ip; exec httpd -f -p 8080 -h /w"]
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
    )
}

/// A pod pinned to `node` that sleeps for an hour.
pub fn sleeper_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"3600\"]\n"
    )
}

/// An address as busybox httpd's CGI reports it: it listens on IPv6 and shows IPv4 peers
/// as `[::ffff:10.244.3.3]`; this gives `10.244.3.3`.
pub fn cgi_addr(s: &str) -> String {
    s.trim().trim_start_matches('[').trim_end_matches(']').trim_start_matches("::ffff:").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cgi_addresses_lose_the_v4_mapped_prefix() {
        assert_eq!(super::cgi_addr("[::ffff:10.244.3.3]\n"), "10.244.3.3");
        assert_eq!(super::cgi_addr("10.1.2.3"), "10.1.2.3");
    }
}
