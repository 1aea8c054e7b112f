//! The admin kubeconfig written at start.

use std::path::Path;

use base64::Engine;

/// Render a kubeconfig for `server` with the CA bundle and a bearer token.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: minik\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: minik\n  context:\n    cluster: minik\n    user: admin\n    namespace: default\ncurrent-context: minik\npreferences: {{}}\n"
    )
}

/// Write the kubeconfig (mode 0600).
pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(server, ca_pem, token))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_yaml() {
        let k = super::render("https://127.0.0.1:6443", "PEM", "tok");
        let v: serde_yaml::Value = serde_yaml::from_str(&k).expect("yaml");
        assert_eq!(v["users"][0]["user"]["token"].as_str(), Some("tok"));
        assert_eq!(v["current-context"].as_str(), Some("minik"));
    }
}
