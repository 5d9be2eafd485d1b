//! The cache mounts a Dockerfile declares (`RUN --mount=type=cache,...`),
//! read from its text: id (the target when not given, as BuildKit does),
//! target, and the owner and mode BuildKit gives the directory when it
//! creates it, which the restore must give it too.

/// One cache mount of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// `id=`, else the target.
    pub id: String,
    /// `target=` (`dst=`, `destination=`).
    pub target: String,
    /// `uid=`, `gid=`, `mode=` as written.
    pub owner: Vec<(String, String)>,
}

/// Every cache mount in `dockerfile`, each id once, in order. Mounts whose
/// id or target uses a variable (`$X`) are left out: the value is only
/// known to the frontend.
pub fn find(dockerfile: &str) -> Vec<MountSpec> {
    let mut out: Vec<MountSpec> = Vec::new();
    for word in dockerfile.split_whitespace() {
        let Some(spec) = word.strip_prefix("--mount=") else {
            continue;
        };
        let spec = spec.trim_matches(['"', '\'']);
        let mut kind = "bind";
        let (mut id, mut target) = (None, None);
        let mut owner = Vec::new();
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, ""));
            match k {
                "type" => kind = v,
                "id" => id = Some(v.to_string()),
                "target" | "dst" | "destination" => target = Some(v.to_string()),
                "uid" | "gid" | "mode" => owner.push((k.to_string(), v.to_string())),
                _ => {}
            }
        }
        let Some(target) = target.filter(|_| kind == "cache") else {
            continue;
        };
        let id = id
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| target.clone());
        if id.contains('$') || target.contains('$') {
            tracing::warn!("cache_mounts: the cache mount {spec} uses a variable; it is not saved");
            continue;
        }
        if !out.iter().any(|m| m.id == id) {
            out.push(MountSpec { id, target, owner });
        }
    }
    out
}

/// The mounts `only` names (by id or target), or all when `only` is empty;
/// a name that matches none is warned about.
pub fn select(all: Vec<MountSpec>, only: &[String]) -> Vec<MountSpec> {
    if only.is_empty() {
        return all;
    }
    for name in only {
        if !all.iter().any(|m| m.id == *name || m.target == *name) {
            tracing::warn!(
                "cache_mounts: the Dockerfile has no cache mount with id or target {name:?}"
            );
        }
    }
    all.into_iter()
        .filter(|m| only.iter().any(|n| *n == m.id || *n == m.target))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_found_with_their_ids_and_owners() {
        let text = "FROM x\nRUN --mount=type=cache,target=/root/.cache/go-build \\\n    \
                    --mount=type=cache,id=npm,target=/home/n/.npm,uid=1000,gid=1000 \
                    --mount=type=bind,target=/src go build\n\
                    RUN --mount=type=cache,target=/root/.cache/go-build true\n\
                    RUN --mount=type=cache,id=$X,target=/y true\n";
        let found = find(text);
        assert_eq!(
            found,
            [
                MountSpec {
                    id: "/root/.cache/go-build".into(),
                    target: "/root/.cache/go-build".into(),
                    owner: vec![],
                },
                MountSpec {
                    id: "npm".into(),
                    target: "/home/n/.npm".into(),
                    owner: vec![("uid".into(), "1000".into()), ("gid".into(), "1000".into())],
                },
            ]
        );
        assert_eq!(select(found.clone(), &["npm".into()]).len(), 1);
        assert_eq!(
            select(found, &["/root/.cache/go-build".into()])[0].id,
            "/root/.cache/go-build"
        );
    }
}
