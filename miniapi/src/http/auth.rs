//! Bearer-token authentication from a static token file
//! (`token,user,uid,"group1,group2"` per line, as kube-apiserver's `--token-auth-file`).
//! An admin token (group `system:masters`) is generated at first start.

use std::collections::HashMap;
use std::path::Path;

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

/// The token table.
#[derive(Debug, Clone, Default)]
pub struct TokenAuth {
    tokens: HashMap<String, UserInfo>,
    admin_token: String,
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

impl TokenAuth {
    /// Load the token file, creating it with a fresh admin token if missing.
    pub fn load_or_init(path: &Path) -> std::io::Result<Self> {
        if !path.exists() {
            let bytes: [u8; 24] = rand::rng().random();
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(path, format!("{token},admin,admin,\"system:masters\"\n"))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        let text = std::fs::read_to_string(path)?;
        Ok(Self::parse(&text))
    }

    /// Parse token-file text.
    pub fn parse(text: &str) -> Self {
        let mut t = TokenAuth::default();
        for (token, user) in text.lines().filter_map(parse_line) {
            if t.admin_token.is_empty() && user.groups.iter().any(|g| g == "system:masters") {
                t.admin_token = token.clone();
            }
            t.tokens.insert(token, user);
        }
        t
    }

    /// The admin token (for the kubeconfig).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Authenticate an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Option<UserInfo> {
        let h = header?.trim();
        let token = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))?
            .trim();
        self.tokens.get(token).cloned()
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
    fn init_creates_admin() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("tokens.csv");
        let a = TokenAuth::load_or_init(&p).expect("init");
        let b = TokenAuth::load_or_init(&p).expect("reload");
        assert_eq!(a.admin_token().len(), 48);
        assert_eq!(a.admin_token(), b.admin_token());
    }
}
