//! Loading: defaults, file, environment, every problem reported at once.

use figment::Figment;
use figment::providers::{Format, Json, Serialized};

use super::{ConfigError, ConfigSource, Settings};
use crate::cardano::Network;

/// Convert `SERVER__BODY_LIMIT_BYTES` into `server.bodyLimitBytes`.
pub(super) fn env_key_to_path(key: &str) -> String {
    key.split("__")
        .map(|seg| {
            let mut out = String::with_capacity(seg.len());
            let mut upper_next = false;
            for (i, ch) in seg.chars().enumerate() {
                if ch == '_' {
                    upper_next = i > 0;
                    continue;
                }
                if upper_next {
                    out.extend(ch.to_uppercase());
                    upper_next = false;
                } else {
                    out.extend(ch.to_lowercase());
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Load settings from defaults, the file and `env` (an iterator of variables, so
/// tests need not touch the process environment).
///
/// Every problem lands in one [`ConfigError::Invalid`]: type errors (each
/// bad value is reported and its key falls back to the default, so one does
/// not hide the next), unknown keys (with the closest known key as a hint),
/// then the semantic checks of [`Settings::validate`].
pub fn load(source: &ConfigSource, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    // Defaults are not merged into the tree: every struct is `#[serde(default)]`,
    // so the tree holds exactly what the operator wrote, and only that is checked.
    let mut figment = Figment::new();

    match std::fs::read_to_string(&source.path) {
        Ok(text) => {
            let display = source.path.display().to_string();
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                return Err(ConfigError::MalformedJson {
                    path: display,
                    line: e.line(),
                    column: e.column(),
                    reason: e.to_string(),
                });
            }
            figment = figment.merge(Json::string(&text));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if source.explicit {
                return Err(ConfigError::FileNotFound(source.path.display().to_string()));
            }
        }
        Err(e) => {
            return Err(ConfigError::FileUnreadable {
                path: source.path.display().to_string(),
                reason: e.to_string(),
            });
        }
    }

    // Environment overrides, from the given list only. A single-segment name
    // that is no top-level key (`X402_INTEROP_REQUIRED`) belongs to other
    // tooling and is left alone; anything nested is checked like the file.
    let known = known_tree();
    let mut env_dict = figment::value::Dict::new();
    let mut env_origin = std::collections::BTreeMap::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("X402_") else {
            continue;
        };
        if rest == "CONFIG" || rest.is_empty() {
            continue;
        }
        let path = env_key_to_path(rest);
        if !rest.contains("__") && known.get(&path).is_none() {
            continue;
        }
        let value: figment::value::Value = v
            .parse()
            .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
        let nested = nest(&path, value);
        env_dict = merge_dicts(env_dict, nested);
        env_origin.insert(path, k.clone());
    }
    figment = figment.merge(Serialized::defaults(env_dict));

    let mut tree: serde_json::Value = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
    let mut problems = renamed_sections(&mut tree, &mut env_origin);
    let (settings, typed_problems) = typed_settings(tree, &env_origin, &known);
    problems.extend(typed_problems);

    // A problem reads `path: reason` (the path may carry ` (X402_…)`, and a
    // network key has a colon of its own: `networks.cardano:preprod.…`).
    let path_of = |p: &str| -> String {
        let path = p.split(": ").next().unwrap_or(p);
        path.split(" (").next().unwrap_or(path).to_owned()
    };
    let reported: Vec<String> = problems.iter().map(|p| path_of(p)).collect();
    for p in settings.validate() {
        let path = path_of(&p);
        // A key whose value was rejected already holds the default; do not
        // report it twice.
        if !reported.contains(&path) {
            problems.push(p);
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let mainnet_ok = env
        .iter()
        .any(|(k, v)| k == "MAINNET" && v.eq_ignore_ascii_case("true"));
    if settings.served_networks().contains(&Network::Mainnet) && !mainnet_ok {
        return Err(ConfigError::MainnetGuard);
    }
    Ok(settings)
}

/// Sections that moved or that the `networks` section replaces, read from
/// the tree as the operator wrote it: `chain.redis` is taken as
/// `store.redis` (its canonical place), unless both are set; with a
/// `networks` section, `chain.network`, `chain.blockfrost` and `chain.devnet`
/// are refused, since each network names its own.
fn renamed_sections(
    tree: &mut serde_json::Value,
    env_origin: &mut std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let old = tree
        .get_mut("chain")
        .and_then(|c| c.as_object_mut())
        .and_then(|c| c.remove("redis"));
    if let Some(old) = old {
        let has_new = tree.pointer("/store/redis").is_some();
        if has_new {
            problems.push(
                "chain.redis: set store.redis only (chain.redis is its former name)".to_owned(),
            );
        } else if let Some(root) = tree.as_object_mut() {
            let store = root
                .entry("store")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(store) = store.as_object_mut() {
                store.insert("redis".into(), old);
            }
            let moved: Vec<(String, String)> = env_origin
                .iter()
                .filter(|(k, _)| k.starts_with("chain.redis."))
                .map(|(k, v)| {
                    (
                        format!("store.redis.{}", &k["chain.redis.".len()..]),
                        v.clone(),
                    )
                })
                .collect();
            env_origin.extend(moved);
        }
    }
    let multi = tree
        .get("networks")
        .and_then(|n| n.as_object())
        .is_some_and(|n| !n.is_empty());
    if multi && let Some(chain) = tree.get("chain").and_then(|c| c.as_object()) {
        for key in super::networks::REPLACED_BY_NETWORKS {
            if chain.contains_key(key) {
                problems.push(if key == "network" {
                    "chain.network: not used with a networks section (each network is a key of networks)".to_owned()
                } else {
                    format!("chain.{key}: not used with a networks section; set networks.<caip2>.{key}")
                });
            }
        }
    }
    problems
}

/// The built-in defaults as JSON: the map of known keys. It is derived from
/// the typed [`Settings`], so a key added there is known here with no edit.
fn known_tree() -> serde_json::Value {
    serde_json::to_value(Settings::default()).unwrap_or_default()
}

/// Dotted path of a `serde_path_to_error` path.
fn error_path(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// Dotted path of a `serde_ignored` path (Option and newtype layers are invisible in JSON).
fn ignored_path(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            Path::Root => break,
            Path::Seq { parent, index } => {
                out.push(index.to_string());
                cur = parent;
            }
            Path::Map { parent, key } => {
                out.push(key.clone());
                cur = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

fn value_at<'a>(
    tree: &'a mut serde_json::Value,
    path: &[String],
) -> Option<&'a mut serde_json::Value> {
    let mut cur = tree;
    for seg in path {
        cur = match cur {
            serde_json::Value::Object(m) => m.get_mut(seg)?,
            serde_json::Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Remove the value at `path` so that its default applies. An array element
/// takes its whole array with it (removing one would renumber the others).
fn remove_at(tree: &mut serde_json::Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match value_at(tree, parent) {
        Some(serde_json::Value::Object(m)) => m.remove(last).is_some(),
        Some(serde_json::Value::Array(_)) => remove_at(tree, parent),
        _ => false,
    }
}

/// The lenient reading the loader always had: `"8080"` for a number, and (for
/// environment values, which arrive untyped) `12345` for a string.
fn coerced(v: &serde_json::Value, from_env: bool) -> Option<serde_json::Value> {
    match v {
        serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(s.trim()) {
            Ok(n @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Some(n),
            _ => None,
        },
        serde_json::Value::Number(n) if from_env => Some(serde_json::Value::String(n.to_string())),
        serde_json::Value::Bool(b) if from_env => Some(serde_json::Value::String(b.to_string())),
        _ => None,
    }
}

/// Levenshtein distance, case-insensitive (a wrong case is a typo too).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known sibling closest to an unknown key, when one is close enough.
fn closest_key(known: &serde_json::Value, path: &[String]) -> Option<String> {
    let (last, parent) = path.split_last()?;
    let mut node = known;
    for seg in parent {
        node = match node {
            serde_json::Value::Object(m) => m.get(seg)?,
            _ => return None,
        };
    }
    let serde_json::Value::Object(siblings) = node else {
        return None;
    };
    let limit = (last.chars().count() / 3).max(2);
    siblings
        .keys()
        .map(|k| (edit_distance(last, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| {
            let mut p = parent.to_vec();
            p.push(k.clone());
            p.join(".")
        })
}

/// Deserialize the merged tree into [`Settings`], collecting every type error
/// and unknown key as `dotted.path: reason`. A rejected value is removed (its
/// default applies) and deserialization runs again, until it succeeds.
fn typed_settings(
    mut tree: serde_json::Value,
    env_origin: &std::collections::BTreeMap<String, String>,
    known: &serde_json::Value,
) -> (Settings, Vec<String>) {
    let label = |path: &[String]| {
        let dotted = path.join(".");
        match env_origin.get(&dotted) {
            Some(var) => format!("{dotted} ({var})"),
            None => dotted,
        }
    };
    let mut problems = Vec::new();
    let mut coerced_paths: std::collections::BTreeMap<Vec<String>, String> = Default::default();
    // Each round removes or rewrites one value, so this bound is never reached
    // by a real file; it only guards against a loop.
    for _ in 0..10_000 {
        let mut unknown = Vec::new();
        let result: Result<Settings, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(&tree, &mut |p: serde_ignored::Path| {
                unknown.push(ignored_path(&p))
            }),
        );
        match result {
            Ok(settings) => {
                for path in unknown {
                    let hint = closest_key(known, &path)
                        .map(|k| format!(" (did you mean {k}?)"))
                        .unwrap_or_default();
                    problems.push(format!("{}: unknown key{hint}", label(&path)));
                }
                return (settings, problems);
            }
            Err(e) => {
                let path = error_path(e.path());
                let reason = e.inner().to_string();
                let reason = match coerced_paths.entry(path.clone()) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let from_env = env_origin.contains_key(&path.join("."));
                        if let Some(v) = value_at(&mut tree, &path)
                            && let Some(alt) = coerced(v, from_env)
                        {
                            *v = alt;
                            slot.insert(reason);
                            continue;
                        }
                        reason
                    }
                    // The lenient reading did not help: report the original problem.
                    std::collections::btree_map::Entry::Occupied(first) => first.get().clone(),
                };
                problems.push(if path.is_empty() {
                    reason
                } else {
                    format!("{}: {reason}", label(&path))
                });
                if !remove_at(&mut tree, &path) {
                    // Nothing left to remove: the defaults are the answer.
                    return (Settings::default(), problems);
                }
            }
        }
    }
    (Settings::default(), problems)
}

fn nest(path: &str, value: figment::value::Value) -> figment::value::Dict {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut dict = figment::value::Dict::new();
    dict.insert(last.to_owned(), value);
    while let Some(p) = parts.pop() {
        let mut outer = figment::value::Dict::new();
        outer.insert(p.to_owned(), figment::value::Value::from(dict));
        dict = outer;
    }
    dict
}

fn merge_dicts(mut a: figment::value::Dict, b: figment::value::Dict) -> figment::value::Dict {
    use figment::value::Value;
    for (k, v) in b {
        match (a.remove(&k), v) {
            (Some(Value::Dict(_, da)), Value::Dict(tag, db)) => {
                a.insert(k, Value::Dict(tag, merge_dicts(da, db)));
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}
