//! `docker-compose.yml` and `.env.example` as the tests read them: a service's
//! environment, its published ports, and compose's `${...}` interpolation.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A file at the workspace root.
fn workspace_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `services.<service>` of the compose file.
pub fn service(service: &str) -> serde_yaml_ng::Value {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&workspace_file("docker-compose.yml")).expect("compose is YAML");
    compose["services"][service].clone()
}

/// The services the compose file defines.
pub fn services() -> Vec<String> {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&workspace_file("docker-compose.yml")).expect("compose is YAML");
    let services = compose["services"].as_mapping().expect("services");
    services
        .keys()
        .map(|k| k.as_str().expect("a service name").to_owned())
        .collect()
}

/// `services.<service>.environment`, its values as written (before interpolation).
pub fn environment(service_name: &str) -> BTreeMap<String, String> {
    let service = service(service_name);
    let mapping = service["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("services.{service_name}.environment is a mapping"));
    mapping
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Null => String::new(),
                other => serde_yaml_ng::to_string(other)
                    .expect("a scalar")
                    .trim()
                    .to_owned(),
            };
            (k.as_str().expect("a variable name").to_owned(), value)
        })
        .collect()
}

/// The value `.env.example` gives `name`.
pub fn env_example(name: &str) -> String {
    workspace_file(".env.example")
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!(".env.example sets {name}"))
        .to_owned()
}

/// `value` with compose's `$$`, `${NAME}`, `${NAME:-default}`, `${NAME-default}` and
/// `${NAME:?error}` resolved against `vars` (as if `vars` were the `.env` file).
pub fn interpolate(value: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = rest.strip_prefix('{') else {
            return Err(format!("unsupported `$` form in {value:?}"));
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {value:?}"))?;
        let (expression, after) = (&body[..end], &body[end + 1..]);
        let split = expression.find([':', '-', '?']).unwrap_or(expression.len());
        let (name, operator) = expression.split_at(split);
        let given = vars.get(name).copied();
        let resolved = if let Some(default) = operator.strip_prefix(":-") {
            given
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
                .to_owned()
        } else if let Some(default) = operator.strip_prefix('-') {
            given.unwrap_or(default).to_owned()
        } else if let Some(error) = operator.strip_prefix(":?") {
            match given.filter(|v| !v.is_empty()) {
                Some(v) => v.to_owned(),
                None => return Err(format!("{name}: {error}")),
            }
        } else if operator.is_empty() {
            given.unwrap_or_default().to_owned()
        } else {
            return Err(format!("unsupported operator in ${{{expression}}}"));
        };
        out.push_str(&resolved);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The environment compose gives `service` with `vars` as the `.env` file.
pub fn interpolated_environment(
    service: &str,
    vars: &BTreeMap<&str, &str>,
) -> BTreeMap<String, String> {
    environment(service)
        .into_iter()
        .map(|(name, value)| {
            let value = interpolate(&value, vars).unwrap_or_else(|err| panic!("{name}: {err}"));
            (name, value)
        })
        .collect()
}

/// The `ports` entries of `service`, as written.
pub fn ports(service_name: &str) -> Vec<String> {
    service(service_name)["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .map(|p| p.as_str().expect("a port string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}
