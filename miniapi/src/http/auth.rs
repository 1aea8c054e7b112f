//! Bearer-token authentication from a static token file
//! (`token,user,uid,"group1,group2"` per line, as kube-apiserver's `--token-auth-file`).
//! An admin token (group `system:masters`) is generated at first start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use rand::Rng;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// The token table. Tokens added to the file while the server runs (`miniapi kubeconfig`
/// appends node credentials) are picked up: an unknown token makes it re-read the file
/// when the file changed since the last read.
#[derive(Debug, Default)]
pub struct TokenAuth {
    path: Option<PathBuf>,
    inner: RwLock<Table>,
}

#[derive(Debug, Clone, Default)]
struct Table {
    tokens: HashMap<String, UserInfo>,
    admin_token: String,
    modified: Option<SystemTime>,
}

fn parse_line(line: &str) -> Option<(String, UserInfo)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut parts = line.splitn(4, ',');
    let token = parts.next()?.trim().to_string();
    let name = parts.next()?.trim().to_string();
    let uid = parts.next().unwrap_or("").trim().to_string();
    let groups = parts
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect();
    (!token.is_empty()).then_some((token, UserInfo { name, uid, groups }))
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Table {
    fn parse(text: &str) -> Self {
        let mut t = Table::default();
        for (token, user) in text.lines().filter_map(parse_line) {
            if t.admin_token.is_empty() && user.groups.iter().any(|g| g == "system:masters") {
                t.admin_token = token.clone();
            }
            t.tokens.insert(token, user);
        }
        t
    }
}

impl TokenAuth {
    /// Load the token file, creating it with a fresh admin token if missing.
    pub fn load_or_init(path: &Path) -> std::io::Result<Self> {
        if !path.exists() {
            std::fs::write(path, format!("{},admin,admin,\"system:masters\"\n", new_token()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        let mut table = Table::parse(&std::fs::read_to_string(path)?);
        table.modified = modified(path);
        Ok(TokenAuth { path: Some(path.to_path_buf()), inner: RwLock::new(table) })
    }

    /// Parse token-file text (no file behind it).
    pub fn parse(text: &str) -> Self {
        TokenAuth { path: None, inner: RwLock::new(Table::parse(text)) }
    }

    /// Appends a new token for `user` (in `groups`) to the token file at `path` and
    /// returns it; a running server accepts it at its first use.
    pub fn add_user(path: &Path, user: &str, groups: &[String]) -> std::io::Result<String> {
        use std::io::Write;
        if user.is_empty() || user.contains(',') || groups.iter().any(|g| g.contains(',') || g.contains('"')) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "user and group names must be non-empty and contain no ',' or '\"'",
            ));
        }
        let token = new_token();
        let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
        f.write_all(format!("{token},{user},{user},\"{}\"\n", groups.join(",")).as_bytes())?;
        f.sync_all()?;
        Ok(token)
    }

    /// The admin token (for the kubeconfig).
    pub fn admin_token(&self) -> String {
        self.inner.read().map(|t| t.admin_token.clone()).unwrap_or_default()
    }

    /// Authenticate an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Option<UserInfo> {
        let h = header?.trim();
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))?
            .trim();
        if let Some(u) = self.inner.read().ok()?.tokens.get(token).cloned() {
            return Some(u);
        }
        self.reload_if_changed();
        self.inner.read().ok()?.tokens.get(token).cloned()
    }

    fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        let now = modified(path);
        if self.inner.read().map(|t| t.modified == now).unwrap_or(true) {
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut table = Table::parse(&text);
                table.modified = now;
                if let Ok(mut t) = self.inner.write() {
                    *t = table;
                }
                tracing::info!(file = %path.display(), "token file re-read");
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot re-read the token file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_file() {
        let t = TokenAuth::parse("abc,admin,1,\"system:masters,x\"\n# c\ndef,bob,2\n");
        assert_eq!(t.admin_token(), "abc");
        assert_eq!(
            t.authenticate(Some("Bearer def")).map(|u| u.name),
            Some("bob".into())
        );
        assert_eq!(
            t.authenticate(Some("Bearer abc")).map(|u| u.groups.len()),
            Some(2)
        );
        assert!(t.authenticate(Some("Bearer nope")).is_none());
        assert!(t.authenticate(None).is_none());
    }

    #[test]
    fn added_users_are_accepted_without_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens.csv");
        let a = TokenAuth::load_or_init(&p).expect("init");
        // The file's mtime must differ from the one read at init.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tok = TokenAuth::add_user(&p, "system:node:n1", &["system:nodes".into()]).expect("add");
        let u = a.authenticate(Some(&format!("Bearer {tok}"))).expect("new token accepted");
        assert_eq!(u.name, "system:node:n1");
        assert_eq!(u.groups, vec!["system:nodes".to_string()]);
        assert!(TokenAuth::add_user(&p, "a,b", &[]).is_err());
    }

    #[test]
    fn init_creates_admin() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens.csv");
        let a = TokenAuth::load_or_init(&p).expect("init");
        let b = TokenAuth::load_or_init(&p).expect("reload");
        assert_eq!(a.admin_token().len(), 48);
        assert_eq!(a.admin_token(), b.admin_token());
    }
}
