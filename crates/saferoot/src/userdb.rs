//! A root's user database (`/etc/passwd`, `/etc/group`), read inside the
//! root and resolved the way Docker 20.10 does, for every caller: a
//! container's `--user` (engine), `COPY --chown` (build) and the runtime's
//! `HOME` default.
//!
//! Docker's rules, checked against a real dockerd:
//! - `--user name` / `--user uid`: the uid and the primary gid of the
//!   passwd entry; the supplementary groups are that gid then every group
//!   whose member list names the user. A numeric uid absent from passwd
//!   runs with gid 0.
//! - `--user name:group` / `uid:gid`: that group (by name, or any number),
//!   and no member groups.
//! - `COPY --chown=name` (the classic builder): the group is looked up by
//!   the *same name* in /etc/group (not the passwd entry's primary group);
//!   `--chown=uid` uses the uid as gid.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

/// The most of a user database file read (a larger one is cut there).
const MAX_FILE: u64 = 16 << 20;

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub home: &'a str,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    members: &'a str,
}

impl GroupEntry<'_> {
    /// Whether the group's member list names `user`.
    pub fn has_member(&self, user: &str) -> bool {
        self.members.split(',').any(|m| m.trim() == user)
    }
}

/// The entries of a passwd file (comments and malformed lines skipped, as
/// libc and Docker's parser skip them).
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0],
                uid: f[2].trim().parse().ok()?,
                gid: f[3].trim().parse().ok()?,
                home: f[5],
            })
        })
}

/// The entries of a group file.
pub fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0],
                gid: f[2].trim().parse().ok()?,
                members: f[3],
            })
        })
}

/// Reads file `path` of `root`, resolved inside it; `None` if it does not
/// exist.
pub fn read_in_root(root: &OwnedFd, path: &str) -> std::io::Result<Option<String>> {
    match crate::open_in_root(root, Path::new(path), OFlag::O_RDONLY) {
        Ok(fd) => {
            let mut s = Vec::new();
            File::from(fd).take(MAX_FILE).read_to_end(&mut s)?;
            Ok(Some(String::from_utf8_lossy(&s).into_owned()))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn numeric(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Why a user or group could not be resolved (Docker's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// A user name not in passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name not in group.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// A `--group-add` name not in group (Docker capitalises this one).
    #[error("Unable to find group {0}: no matching entries in group file")]
    NoExtraGroup(String),
}

/// A process's identity as `--user` and `--group-add` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the others, each once.
    pub additional_gids: Vec<u32>,
    /// The passwd entry's home, `/` when there is none.
    pub home: String,
}

/// Resolves `spec` (`user[:group]`, empty: root) and `group_add` against
/// the text of passwd and group files, as `docker run` does.
pub fn resolve_user(
    spec: &str,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> Result<User, LookupError> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry =
        passwd_entries(passwd).find(|e| e.name == u || numeric(u).is_some_and(|n| n == e.uid));
    let (uid, mut gid, home, name) = match (entry, numeric(u)) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), e.name),
        (None, Some(n)) => (n, 0, "/".to_string(), ""),
        (None, None) => return Err(LookupError::NoUser(u.to_string())),
    };
    let group_id = |g: &str| {
        group_entries(group)
            .find(|e| e.name == g)
            .map(|e| e.gid)
            .or_else(|| numeric(g))
    };
    if let Some(g) = g {
        gid = group_id(g).ok_or_else(|| LookupError::NoGroup(g.to_string()))?;
    }
    let mut additional_gids = vec![gid];
    let mut add = |id: u32| {
        if !additional_gids.contains(&id) {
            additional_gids.push(id);
        }
    };
    if g.is_none() && !name.is_empty() {
        for e in group_entries(group).filter(|e| e.has_member(name)) {
            add(e.gid);
        }
    }
    for extra in group_add {
        add(group_id(extra).ok_or_else(|| LookupError::NoExtraGroup(extra.clone()))?);
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// The uid:gid of a `COPY --chown` value, as Docker's classic builder
/// resolves it: names through the files (read only when a name needs
/// them), numbers as they are, and a missing group taken as the user's
/// text again (`--chown=app` is `app:app`, `--chown=1000` is `1000:1000`).
/// `files` yields the passwd or group text (`"etc/passwd"`, `"etc/group"`),
/// `None` when the image has no such file.
pub fn resolve_chown<E>(
    user: &str,
    group: Option<&str>,
    mut files: impl FnMut(&str) -> Result<Option<String>, E>,
    missing: impl Fn(ChownMiss<'_>) -> E,
) -> Result<(u32, u32), E> {
    let group = group.unwrap_or(user);
    let mut id = |file: &'static str, what: &'static str, name: &str| -> Result<u32, E> {
        if let Some(n) = numeric(name) {
            return Ok(n);
        }
        let miss = |m| missing(m);
        let text = files(file)?.ok_or_else(|| miss(ChownMiss::NoFile { file, what, name }))?;
        let found = if file == "etc/passwd" {
            passwd_entries(&text)
                .find(|e| e.name == name)
                .map(|e| e.uid)
        } else {
            group_entries(&text).find(|e| e.name == name).map(|e| e.gid)
        };
        found.ok_or_else(|| miss(ChownMiss::NoEntry { file, what, name }))
    };
    let uid = id("etc/passwd", "user", user)?;
    let gid = id("etc/group", "group", group)?;
    Ok((uid, gid))
}

/// The uid:gid that owns the directories a Dockerfile's WORKDIR creates
/// under `USER spec`, as BuildKit resolves it (Docker's builder since 23,
/// and the one docker 20.10 runs with DOCKER_BUILDKIT=1): a number is the
/// uid and, without a group, the gid too; a name takes uid and gid from
/// passwd; a group (number, or a name in group) replaces the gid. What is
/// not found is not an error: an unknown user is root, an unknown group
/// leaves the user's gid (the build goes on, as BuildKit's does).
pub fn resolve_workdir_owner(spec: &str, passwd: Option<&str>, group: Option<&str>) -> (u32, u32) {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match numeric(u) {
        Some(n) => (n, n),
        None => passwd
            .and_then(|text| passwd_entries(text).find(|e| e.name == u))
            .map_or((0, 0), |e| (e.uid, e.gid)),
    };
    if let Some(g) = g {
        let found = numeric(g).or_else(|| {
            group.and_then(|text| group_entries(text).find(|e| e.name == g).map(|e| e.gid))
        });
        if let Some(n) = found {
            gid = n;
        }
    }
    (uid, gid)
}

/// What [`resolve_chown`] could not find, for the caller's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChownMiss<'a> {
    /// The image has no such file.
    NoFile {
        file: &'a str,
        what: &'a str,
        name: &'a str,
    },
    /// The file has no such entry.
    NoEntry {
        file: &'a str,
        what: &'a str,
        name: &'a str,
    },
}

/// The home directory of `uid` in a passwd text; `/` if it has none (runc
/// does the same for a process whose environment has no HOME).
pub fn home_of(passwd: &str, uid: u32) -> String {
    passwd_entries(passwd)
        .find(|e| e.uid == uid && !e.home.is_empty())
        .map_or_else(|| "/".to_string(), |e| e.home.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The files of the dockerd comparison in the module's doc: app's
    // primary group (prim, 2000) differs from the group named app (3000).
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\n\
                          app:x:1000:2000:app:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nprim:x:2000:\napp:x:3000:\nextra:x:4000:app\n";

    fn run(spec: &str) -> Result<(u32, u32, Vec<u32>), LookupError> {
        resolve_user(spec, &[], PASSWD, GROUP).map(|u| (u.uid, u.gid, u.additional_gids))
    }

    /// Each line: what `docker run --user X busybox id` printed.
    #[test]
    fn run_user_resolves_like_docker() {
        assert_eq!(run("app").unwrap(), (1000, 2000, vec![2000, 4000]));
        assert_eq!(run("app:extra").unwrap(), (1000, 4000, vec![4000]));
        assert_eq!(run("1000").unwrap(), (1000, 2000, vec![2000, 4000]));
        assert_eq!(run("1000:4000").unwrap(), (1000, 4000, vec![4000]));
        assert_eq!(run("4242").unwrap(), (4242, 0, vec![0]));
        assert_eq!(run("4242:4343").unwrap(), (4242, 4343, vec![4343]));
        assert_eq!(run("app:4343").unwrap(), (1000, 4343, vec![4343]));
        assert_eq!(run("").unwrap(), (0, 0, vec![0]));
        assert_eq!(run("nosuch"), Err(LookupError::NoUser("nosuch".into())));
        assert_eq!(
            run("app:nosuch"),
            Err(LookupError::NoGroup("nosuch".into()))
        );
        let u = resolve_user("app", &["root".into(), "77".into()], PASSWD, GROUP).unwrap();
        assert_eq!(u.additional_gids, [2000, 4000, 0, 77]);
        assert_eq!(u.home, "/home/app");
    }

    /// Each line: the owner of `WORKDIR /a` after `USER X`, as docker
    /// 20.10's BuildKit made it over these files.
    #[test]
    fn workdir_owner_resolves_like_buildkit() {
        let owner = |spec| resolve_workdir_owner(spec, Some(PASSWD), Some(GROUP));
        assert_eq!(owner("1000"), (1000, 1000));
        assert_eq!(owner("app"), (1000, 2000));
        assert_eq!(owner("app:0"), (1000, 0));
        assert_eq!(owner("app:extra"), (1000, 4000));
        assert_eq!(owner("1:2"), (1, 2));
        assert_eq!(owner("5:nosuch"), (5, 5));
        assert_eq!(owner("app:nosuch"), (1000, 2000));
        assert_eq!(owner("nosuch"), (0, 0));
        assert_eq!(owner(""), (0, 0));
        assert_eq!(resolve_workdir_owner("app", None, None), (0, 0));
    }

    fn chown(spec: &str) -> Result<(u32, u32), String> {
        let (u, g) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        resolve_chown(
            u,
            g,
            |f| {
                Ok(Some(match f {
                    "etc/passwd" => PASSWD.to_string(),
                    _ => GROUP.to_string(),
                }))
            },
            |m| format!("{m:?}"),
        )
    }

    /// Each line: the owner `COPY --chown=X` gave under Docker 20.10's
    /// classic builder.
    #[test]
    fn copy_chown_resolves_like_dockers_builder() {
        assert_eq!(chown("app").unwrap(), (1000, 3000));
        assert_eq!(chown("1000").unwrap(), (1000, 1000));
        assert_eq!(chown("app:extra").unwrap(), (1000, 4000));
        assert_eq!(chown("4242").unwrap(), (4242, 4242));
        assert!(chown("prim").unwrap_err().contains("etc/passwd"));
        assert!(chown("1000:nosuch").unwrap_err().contains("nosuch"));
    }

    #[test]
    fn home_defaults_to_root_dir() {
        assert_eq!(home_of(PASSWD, 1000), "/home/app");
        assert_eq!(home_of(PASSWD, 5), "/");
    }
}
