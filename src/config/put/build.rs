//! The build half of the put params: context, Dockerfile, target, args,
//! labels, secrets, ssh, platforms, hosts, images standing in for `FROM`,
//! cache settings, timestamps and network, each checked against the source
//! dir so that a typo fails before any daemon starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::secret::Secret;

use super::access::{
    Decoder, SECRET_FILE_LIMIT, SMALL_FILE_LIMIT, check_small, read_small, scalar_text,
};
use super::errors::{ParamsError, Result, type_error};
use super::params;
use super::tags::validate_tag;
use super::values::{image_reference, validate_platform};
use super::{
    BuildParams, CacheSpec, DEFAULT_SBOM_GENERATOR, LoadBase, Network, NoCache, Provenance, Sbom,
    SecretSpec, SshSpec,
};

impl Decoder<'_> {
    /// Reads the build params in a fixed order, so that of several mistakes
    /// the same one is always reported first.
    pub(super) fn build(&mut self) -> Result<BuildParams> {
        let context = self.context()?;
        let dockerfile = self.dockerfile(&context)?;
        let target = self.target()?;
        let build_args =
            self.merged_map(&params::BUILD_ARGS, &params::BUILD_ARGS_FILE, "build arg")?;
        let labels = self.merged_map(&params::LABELS, &params::LABELS_FILE, "label")?;
        let annotations = self.string_map("annotations")?.into_iter().collect();
        let secrets = self.secrets()?;
        let ssh = self.ssh_specs()?;
        let platforms = self.platforms()?;
        let add_hosts = self.add_hosts()?;
        let image_args = self.image_args()?;
        let load_bases = self.load_bases()?;
        let no_cache = self.no_cache()?;
        let cache_from = self.cache_from()?;
        let cache_to = self
            .list("cache_to")?
            .iter()
            .map(|s| parse_cache_spec("cache_to", s))
            .collect::<Result<Vec<_>>>()?;
        let cache_tag = self.cache_tag()?;
        let cache_mounts = self.cache_mounts()?;
        let source_date_epoch = self.source_date_epoch()?;
        let network = self.network()?;
        let provenance = self.provenance()?;
        let sbom = self.sbom()?;
        Ok(BuildParams {
            context,
            dockerfile,
            target,
            build_args,
            labels,
            annotations,
            secrets,
            ssh,
            platforms,
            add_hosts,
            image_args,
            load_bases,
            no_cache,
            cache_from,
            cache_to,
            cache_tag,
            cache_mounts,
            source_date_epoch,
            network,
            provenance,
            sbom,
        })
    }

    /// The build context, the source dir unless set. Checked to be a
    /// directory here, before the default Dockerfile is looked for in it.
    fn context(&self) -> Result<PathBuf> {
        Ok(match self.first_text(&params::CONTEXT)? {
            Some((param, value)) => {
                let path = self.path(&param, &value)?;
                if !path.is_dir() {
                    return Err(ParamsError::Invalid {
                        param,
                        problem: format!("{} is not a directory", path.display()),
                    });
                }
                path
            }
            None => self.env.src_dir.to_path_buf(),
        })
    }

    /// The Dockerfile, `<context>/Dockerfile` unless set; a missing default
    /// is reported as such, since the user never named that path.
    fn dockerfile(&self, context: &Path) -> Result<PathBuf> {
        let dockerfile = match self.first_text(&params::DOCKERFILE)? {
            Some((param, value)) => self.path(&param, &value)?,
            None => {
                let path = context.join("Dockerfile");
                if !path.exists() {
                    return Err(ParamsError::MissingPath {
                        param: "dockerfile (default: <context>/Dockerfile)".into(),
                        path,
                    });
                }
                path
            }
        };
        if !dockerfile.is_file() {
            return Err(ParamsError::Invalid {
                param: "dockerfile".into(),
                problem: format!("{} is not a file", dockerfile.display()),
            });
        }
        Ok(dockerfile)
    }

    /// The target stage, inline or read from a file; the file overrides the
    /// inline name, with a note so that the override is not silent.
    fn target(&mut self) -> Result<Option<String>> {
        let mut target = self.first_text(&params::TARGET)?.map(|(_, t)| t);
        if let Some((param, file)) = self.first_text(&params::TARGET_FILE)? {
            let (path, text) = self.read(&param, &file)?;
            let t = text.trim();
            if t.is_empty() {
                return Err(ParamsError::Invalid {
                    param,
                    problem: format!("{} is empty", path.display()),
                });
            }
            if target.is_some() {
                self.notes
                    .push(format!("{param} overrides the target stage set inline"));
            }
            target = Some(t.to_string());
        }
        Ok(target)
    }

    /// The ssh forwards: one string is taken whole, since a spec may hold
    /// commas.
    fn ssh_specs(&self) -> Result<Vec<SshSpec>> {
        Ok(match self.one_of(&params::SSH)? {
            Some(name) => self
                .list_or_text(name)?
                .iter()
                .map(|s| self.ssh(name, s))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        })
    }

    /// The target platforms, each checked here rather than by the daemon,
    /// which would only fail after the build started.
    fn platforms(&self) -> Result<Vec<String>> {
        Ok(match self.one_of(&params::PLATFORMS)? {
            Some(name) => {
                let list = self.list(name)?;
                for p in &list {
                    validate_platform(name, p)?;
                }
                list
            }
            None => Vec::new(),
        })
    }

    /// The registry cache tag with `cache: true` (`buildcache` by default);
    /// a `cache_tag` without it is a mistake, not something to ignore.
    fn cache_tag(&self) -> Result<Option<String>> {
        if self.flag("cache")? {
            let tag = self
                .text("cache_tag")?
                .unwrap_or_else(|| "buildcache".into());
            validate_tag("cache_tag", &tag)?;
            Ok(Some(tag))
        } else {
            if self.is_set("cache_tag") {
                return Err(ParamsError::Invalid {
                    param: "cache_tag".into(),
                    problem: "it only applies with `cache: true`".into(),
                });
            }
            Ok(None)
        }
    }

    /// `source_date_epoch`: whole seconds, as `SOURCE_DATE_EPOCH` is.
    fn source_date_epoch(&self) -> Result<Option<u64>> {
        Ok(match self.text("source_date_epoch")? {
            Some(s) => Some(s.parse::<u64>().map_err(|_| ParamsError::Invalid {
                param: "source_date_epoch".into(),
                problem: format!("{s:?} is not a number of seconds since 1970"),
            })?),
            None => None,
        })
    }

    /// `network` for `RUN` steps; `sandbox` is BuildKit's name for the
    /// default.
    fn network(&self) -> Result<Network> {
        Ok(match self.text("network")?.as_deref() {
            None | Some("default" | "sandbox") => Network::Default,
            Some("none") => Network::None,
            Some("host") => Network::Host,
            Some(other) => {
                return Err(ParamsError::Invalid {
                    param: "network".into(),
                    problem: format!("{other:?} is not one of default, none, host"),
                });
            }
        })
    }

    /// `provenance: min | max | true | false` (buildx's `mode=` spellings too).
    fn provenance(&self) -> Result<Provenance> {
        Ok(match self.text("provenance")?.as_deref() {
            None => Provenance::Default,
            Some("false") => Provenance::Off,
            Some("true" | "min" | "mode=min") => Provenance::Min,
            Some("max" | "mode=max") => Provenance::Max,
            Some(other) => {
                return Err(ParamsError::Invalid {
                    param: "provenance".into(),
                    problem: format!("{other:?} is not one of min, max, false"),
                });
            }
        })
    }

    /// `sbom: true` (BuildKit's own scanner), `false`, or a scanner image
    /// (`generator=<image>` as buildx writes it, or the image alone).
    fn sbom(&self) -> Result<Option<Sbom>> {
        let image = match self.text("sbom")?.as_deref() {
            None | Some("false") => return Ok(None),
            Some("true") => DEFAULT_SBOM_GENERATOR.to_owned(),
            Some(text) => {
                let image = text.strip_prefix("generator=").unwrap_or(text).trim();
                if image.is_empty() || image.contains(',') {
                    return Err(ParamsError::Invalid {
                        param: "sbom".into(),
                        problem: format!(
                            "{text:?} is not true, false or a scanner image reference"
                        ),
                    });
                }
                image.to_owned()
            }
        };
        let (repository, reference) = image_reference("sbom", &image)?;
        Ok(Some(Sbom {
            repository,
            reference,
        }))
    }

    /// A list, or one string taken whole (ssh specs contain commas).
    fn list_or_text(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            _ => self.list(name),
        }
    }

    /// A secret file: a regular file BuildKit accepts (at most 500 KiB),
    /// checked now and read by the session when the build asks for it.
    fn secret_file(&self, param: &str, value: &str) -> Result<PathBuf> {
        let path = self.path(param, value)?;
        check_small(param, &path, SECRET_FILE_LIMIT)?;
        Ok(path)
    }

    /// An ssh path: an agent's socket, or a private key file.
    fn ssh_path(&self, param: &str, value: &str) -> Result<PathBuf> {
        let path = self.path(param, value)?;
        let is_socket = std::fs::metadata(&path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
        if !is_socket {
            check_small(param, &path, SMALL_FILE_LIMIT)?;
        }
        Ok(path)
    }

    fn ssh(&self, param: &str, spec: &str) -> Result<SshSpec> {
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) => (id.trim(), Some(path.trim())),
            None => (spec.trim(), None),
        };
        if id.is_empty() {
            return Err(ParamsError::Invalid {
                param: param.into(),
                problem: format!("{spec:?} has no id (use `default` or `<id>=<key or socket>`)"),
            });
        }
        let path = match path {
            Some(p) if p.contains(',') => {
                return Err(ParamsError::Invalid {
                    param: param.into(),
                    problem: format!(
                        "id {id:?} lists several paths; give one key or socket per id"
                    ),
                });
            }
            Some(p) => Some(self.ssh_path(param, p)?),
            None => None,
        };
        Ok(SshSpec {
            id: id.to_string(),
            path,
        })
    }

    fn secrets(&self) -> Result<BTreeMap<String, SecretSpec>> {
        let mut out: BTreeMap<String, (String, SecretSpec)> = BTreeMap::new();
        let mut add = |id: String, param: String, spec: SecretSpec| -> Result<()> {
            if let Some((first, _)) = out.get(&id) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("secret {id:?}"),
                });
            }
            out.insert(id, (param, spec));
            Ok(())
        };
        match self.map.get("secrets") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (id, entry) in m {
                    let param = format!("secrets.{id}");
                    let Value::Object(entry) = entry else {
                        return Err(type_error(
                            &param,
                            "an object with `file`, `text` or `env`",
                            entry,
                        ));
                    };
                    let set: Vec<(&String, &Value)> =
                        entry.iter().filter(|(_, v)| !v.is_null()).collect();
                    let [(kind, value)] = set.as_slice() else {
                        return Err(ParamsError::Invalid {
                            param,
                            problem: "give exactly one of `file`, `text`, `env` (docker-image's `source` = `file`)"
                                .into(),
                        });
                    };
                    let text =
                        scalar_text(value).ok_or_else(|| type_error(&param, "a string", value))?;
                    let spec = match kind.as_str() {
                        "file" | "source" => {
                            SecretSpec::File(self.secret_file(&format!("{param}.{kind}"), &text)?)
                        }
                        "text" => SecretSpec::Text(Secret::new(text)),
                        "env" => self.env_secret(&param, &text)?,
                        other => {
                            return Err(ParamsError::Unknown {
                                name: format!("{param}.{other}"),
                                hint: crate::config::decode::suggest(
                                    other,
                                    ["file", "text", "env", "source"],
                                )
                                .map(str::to_string),
                            });
                        }
                    };
                    add(id.clone(), param, spec)?;
                }
            }
            Some(v) => return Err(type_error("secrets", "an object", v)),
        }
        for (id, param, path) in self.prefixed("BUILDKIT_SECRET_")? {
            let spec = SecretSpec::File(self.secret_file(&param, &path)?);
            add(id, param, spec)?;
        }
        for (id, param, text) in self.prefixed("BUILDKIT_SECRETTEXT_")? {
            add(id, param, SecretSpec::Text(Secret::new(text)))?;
        }
        Ok(out.into_iter().map(|(id, (_, spec))| (id, spec)).collect())
    }

    fn env_secret(&self, param: &str, var: &str) -> Result<SecretSpec> {
        if (self.env.var)(var).is_none() {
            return Err(ParamsError::Invalid {
                param: param.into(),
                problem: format!("environment variable {var:?} is not set"),
            });
        }
        Ok(SecretSpec::Env(var.to_string()))
    }

    fn add_hosts(&self) -> Result<Vec<(String, String)>> {
        let Some(name) = self.one_of(&params::ADD_HOSTS)? else {
            return Ok(Vec::new());
        };
        let entries: Vec<String> = match self.map.get(name) {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(h, ip)| {
                    scalar_text(ip)
                        .map(|ip| format!("{h}={ip}"))
                        .ok_or_else(|| type_error(&format!("{name}.{h}"), "an IP address", ip))
                })
                .collect::<Result<_>>()?,
            _ => self.list(name)?,
        };
        entries
            .iter()
            .map(|e| {
                // buildctl uses `host=ip`; docker's `--add-host` uses `host:ip`.
                let (host, ip) = e
                    .split_once('=')
                    .or_else(|| {
                        e.split_once(':')
                            .filter(|(_, ip)| ip.parse::<std::net::IpAddr>().is_ok())
                    })
                    .ok_or_else(|| ParamsError::Invalid {
                        param: name.into(),
                        problem: format!("{e:?} is not host=ip"),
                    })?;
                let (host, ip) = (host.trim(), ip.trim());
                if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(ParamsError::Invalid {
                        param: name.into(),
                        problem: format!("{e:?} is not host=ip"),
                    });
                }
                Ok((host.to_string(), ip.to_string()))
            })
            .collect()
    }

    fn image_args(&self) -> Result<BTreeMap<String, PathBuf>> {
        let mut out: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
        let mut entries: Vec<(String, String, String)> = self
            .string_map("image_args")?
            .into_iter()
            .map(|(k, v)| (k.clone(), format!("image_args.{k}"), v))
            .collect();
        entries.extend(self.prefixed(params::IMAGE_ARGS.family())?);
        for (name, param, path) in entries {
            if let Some((first, _)) = out.get(&name) {
                return Err(ParamsError::Conflict {
                    first: first.clone(),
                    second: param,
                    what: format!("image arg {name:?}"),
                });
            }
            let path = self.path(&param, &path)?;
            out.insert(name, (param, path));
        }
        Ok(out.into_iter().map(|(k, (_, p))| (k, p)).collect())
    }

    /// docker-image's `load_base` (one dir) and `load_bases` (a list).
    fn load_bases(&self) -> Result<Vec<LoadBase>> {
        let mut dirs: Vec<(String, String)> = Vec::new();
        if let Some(d) = self.text("load_base")? {
            dirs.push(("load_base".into(), d));
        }
        for d in self.list("load_bases")? {
            dirs.push(("load_bases".into(), d));
        }
        dirs.iter()
            .map(|(param, d)| {
                let dir = self.path(param, d)?;
                let read = |file: &str| -> Result<String> {
                    read_small(param, &dir.join(file), SMALL_FILE_LIMIT)
                        .map(|s| s.trim().to_string())
                };
                let repository = read("repository")?;
                let tag = if dir.join("tag").exists() {
                    read("tag")?
                } else {
                    "latest".into()
                };
                let image = ["image", "image.tar", "oci"]
                    .iter()
                    .map(|f| dir.join(f))
                    .find(|p| p.exists())
                    .ok_or_else(|| ParamsError::MissingPath {
                        param: param.clone(),
                        path: dir.join("image"),
                    })?;
                Ok(LoadBase {
                    name: format!("{repository}:{tag}"),
                    image,
                })
            })
            .collect()
    }

    fn no_cache(&self) -> Result<NoCache> {
        match self.map.get("no_cache") {
            None | Some(Value::Null) => Ok(NoCache::Off),
            Some(Value::Array(_)) => {
                let stages = self.list("no_cache")?;
                Ok(if stages.is_empty() {
                    NoCache::Off
                } else {
                    NoCache::Stages(stages)
                })
            }
            Some(_) => Ok(if self.flag("no_cache")? {
                NoCache::All
            } else {
                NoCache::Off
            }),
        }
    }

    /// Cache specs; docker-image's form (dirs from a `get`) becomes a
    /// registry import of the image they name.
    fn cache_from(&self) -> Result<Vec<CacheSpec>> {
        self.list("cache_from")?
            .iter()
            .map(|entry| {
                if !entry.contains('=') {
                    super::access::inside("cache_from", entry)?;
                }
                let dir = self.env.src_dir.join(entry);
                if !entry.contains('=') && dir.join("repository").is_file() {
                    let read = |f: &str| {
                        crate::small_file::read_text(&dir.join(f), SMALL_FILE_LIMIT)
                            .ok()
                            .map(|s| s.trim().to_string())
                    };
                    let repository = read("repository").unwrap_or_default();
                    let reference = match (read("digest"), read("tag")) {
                        (Some(d), _) if !d.is_empty() => format!("{repository}@{d}"),
                        (_, Some(t)) if !t.is_empty() => format!("{repository}:{t}"),
                        _ => format!("{repository}:latest"),
                    };
                    return Ok(CacheSpec {
                        kind: "registry".into(),
                        attrs: BTreeMap::from([("ref".to_string(), reference)]),
                    });
                }
                parse_cache_spec("cache_from", entry)
            })
            .collect()
    }
}

/// `type=registry,ref=r,mode=max`, or a bare reference for a registry cache.
pub fn parse_cache_spec(param: &str, spec: &str) -> Result<CacheSpec> {
    if !spec.contains('=') {
        return Ok(CacheSpec {
            kind: "registry".into(),
            attrs: BTreeMap::from([("ref".to_string(), spec.trim().to_string())]),
        });
    }
    let mut kind = None;
    let mut attrs = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').ok_or_else(|| ParamsError::Invalid {
            param: param.into(),
            problem: format!("{part:?} in {spec:?} is not key=value"),
        })?;
        if k.trim() == "type" {
            kind = Some(v.trim().to_string());
        } else {
            attrs.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let kind = kind.unwrap_or_else(|| "registry".into());
    match kind.as_str() {
        "registry" if !attrs.contains_key("ref") => Err(ParamsError::Invalid {
            param: param.into(),
            problem: format!("{spec:?} needs ref=<image reference>"),
        }),
        "local" => Err(ParamsError::Invalid {
            param: param.into(),
            problem: "type=local caches do not survive a put container; use type=registry (or `cache: true`)"
                .into(),
        }),
        _ => Ok(CacheSpec { kind, attrs }),
    }
}
