//! `COPY --chown` and `--chmod` values: numeric ids, or user and group names looked up in
//! the image's `/etc/passwd` and `/etc/group` as BuildKit does (a user alone gives the
//! user's primary group; a numeric user alone gives the same number as the group).

use super::steps::Failed;

/// The names a `--chown` value needs looked up, if any.
pub fn needs_lookup(raw: &str) -> bool {
    raw.split(':').any(|p| p.parse::<u64>().is_err())
}

/// `--chown=USER[:GROUP]` with ids or names; `passwd` and `group` are the image's files
/// (None when the image has none).
pub fn resolve(raw: &str, passwd: Option<&str>, group: Option<&str>) -> Result<(u64, u64), Failed> {
    let mut parts = raw.split(':');
    let user = parts.next().unwrap_or_default();
    let grp = parts.next();
    if parts.next().is_some() || user.is_empty() || grp == Some("") {
        return Err(format!(
            "--chown={raw}: expected USER[:GROUP], by name or id"
        ));
    }
    let (uid, primary) = match user.parse::<u64>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let found = passwd.and_then(|text| lookup(text, user));
            let fields = found.ok_or_else(|| {
                format!(
                    "--chown={raw}: unable to find user {user}: no matching entries in passwd file"
                )
            })?;
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            match (number(2), number(3)) {
                (Some(u), Some(g)) => (u, g),
                _ => {
                    return Err(format!(
                        "--chown={raw}: the passwd entry of {user} is malformed"
                    ))
                }
            }
        }
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u64>() {
            Ok(gid) => gid,
            Err(_) => group
                .and_then(|text| lookup(text, g))
                .and_then(|fields| fields.get(2).and_then(|f| f.parse().ok()))
                .ok_or_else(|| {
                    format!("--chown={raw}: unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok((uid, gid))
}

/// The `:`-separated fields of the line whose first field is `name`.
fn lookup<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
}

/// `--chmod=MODE`: octal.
pub fn parse_chmod(raw: &str) -> Result<u32, Failed> {
    u32::from_str_radix(raw, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={raw}: expected an octal mode such as 755"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napps:x:1001:\n";

    #[test]
    fn numeric_ids_need_no_files() {
        assert!(!needs_lookup("1000:1000"));
        assert_eq!(resolve("1000", None, None), Ok((1000, 1000)));
        assert_eq!(resolve("1:2", None, None), Ok((1, 2)));
    }

    #[test]
    fn names_come_from_passwd_and_group() {
        assert!(needs_lookup("app"));
        assert!(needs_lookup("0:staff"));
        let r = |raw| resolve(raw, Some(PASSWD), Some(GROUP));
        assert_eq!(
            r("app"),
            Ok((1000, 1001)),
            "a user alone: the primary group"
        );
        assert_eq!(r("app:staff"), Ok((1000, 50)));
        assert_eq!(r("www-data:0"), Ok((33, 0)));
        assert_eq!(r("7:apps"), Ok((7, 1001)));
    }

    #[test]
    fn unknown_names_and_bad_values_are_named() {
        let r = |raw| resolve(raw, Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(
            r("nobody").contains("unable to find user nobody"),
            "{}",
            r("nobody")
        );
        assert!(r("app:wheel").contains("unable to find group wheel"));
        assert!(r("a:b:c").contains("expected USER[:GROUP]"));
        assert!(resolve("app", None, None).unwrap_err().contains("passwd"));
        assert_eq!(parse_chmod("755"), Ok(0o755));
        assert!(parse_chmod("9").is_err());
    }
}
