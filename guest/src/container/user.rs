//! Resolving `-u USER[:GROUP]` against the container's own /etc/passwd and /etc/group
//! (a static guest binary has no NSS, and the container's files are what Docker uses).

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Resolves `spec` (`name`, `uid`, `name:group`, `uid:gid`; root when `None`) from the
/// contents of the container's passwd and group files.
pub fn resolve(spec: Option<&str>, passwd: &str, group: &str) -> Result<Identity, String> {
    let spec = spec.unwrap_or("0").trim();
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user)));
    let (uid, mut gid, home) = match (&entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .map_err(|_| format!("bad uid in /etc/passwd for {user}"))?,
            f[3].parse()
                .map_err(|_| format!("bad gid in /etc/passwd for {user}"))?,
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, uid, "/".to_string()),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        }
    };
    if uid == 0 && entry.is_none() {
        gid = 0;
    }
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        };
    }
    Ok(Identity { uid, gid, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1001:www:/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:1001:\nstaff:x:50:\n";

    fn id(uid: u32, gid: u32, home: &str) -> Identity {
        Identity {
            uid,
            gid,
            home: home.into(),
        }
    }

    #[test]
    fn names_ids_and_groups() {
        assert_eq!(resolve(None, PASSWD, GROUP), Ok(id(0, 0, "/root")));
        assert_eq!(
            resolve(Some("www"), PASSWD, GROUP),
            Ok(id(1000, 1001, "/www"))
        );
        assert_eq!(
            resolve(Some("1000"), PASSWD, GROUP),
            Ok(id(1000, 1001, "/www"))
        );
        assert_eq!(
            resolve(Some("www:staff"), PASSWD, GROUP),
            Ok(id(1000, 50, "/www"))
        );
        assert_eq!(
            resolve(Some("4242:77"), PASSWD, GROUP),
            Ok(id(4242, 77, "/"))
        );
        assert_eq!(
            resolve(Some("4242"), PASSWD, GROUP),
            Ok(id(4242, 4242, "/"))
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve(Some("ghost"), PASSWD, GROUP)
            .unwrap_err()
            .contains("ghost"));
        assert!(resolve(Some("www:ghosts"), PASSWD, GROUP)
            .unwrap_err()
            .contains("ghosts"));
    }
}
