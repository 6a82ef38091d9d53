//! The compose file and the binaries cannot drift apart: every variable it
//! gives the broker and the worker is one they read, and every setting they
//! require is given.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

/// Variables read outside clap: the log filter.
const READ_BY_TRACING: &str = "RUST_LOG";

/// Env names of `command`'s arguments and its subcommands', and those without defaults that must be set.
fn env_names(
    command: &clap::Command,
    names: &mut BTreeSet<String>,
    required: &mut BTreeSet<String>,
) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy().into_owned();
            if arg.is_required_set() && arg.get_default_values().is_empty() {
                required.insert(env.clone());
            }
            names.insert(env);
        }
    }
    for sub in command.get_subcommands() {
        env_names(sub, names, required);
    }
}

fn compose_environment(service: &str) -> BTreeSet<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let environment = &compose["services"][service]["environment"];
    let mapping = environment
        .as_mapping()
        .unwrap_or_else(|| panic!("services.{service}.environment is a mapping"));
    mapping
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn check(service: &str, read: BTreeSet<String>, required: BTreeSet<String>) {
    let given = compose_environment(service);
    assert!(!given.is_empty());
    let unread: Vec<_> = given
        .iter()
        .filter(|v| !read.contains(*v) && *v != READ_BY_TRACING)
        .collect();
    assert!(
        unread.is_empty(),
        "compose gives {service} variables it never reads: {unread:?}"
    );
    let missing: Vec<_> = required.iter().filter(|v| !given.contains(*v)).collect();
    assert!(
        missing.is_empty(),
        "{service} requires variables compose does not give: {missing:?}"
    );
}

#[test]
fn compose_gives_the_broker_only_what_it_reads() {
    let command =
        keylease_broker::BrokerConfig::augment_args(clap::Command::new("keylease-broker"));
    let (mut read, mut required) = (BTreeSet::new(), BTreeSet::new());
    env_names(&command, &mut read, &mut required);
    assert!(read.contains("KEYLEASE_BROKER_ADMIN_TOKEN"), "{read:?}");
    check("broker", read, required);
}

#[test]
fn compose_gives_the_worker_only_what_it_reads() {
    let command = keylease_worker::cli::Cli::command();
    let (mut read, mut required) = (BTreeSet::new(), BTreeSet::new());
    env_names(&command, &mut read, &mut required);
    assert!(
        read.contains("KEYLEASE_BROKER_TOKEN") && read.contains("TEMPORAL_ADDRESS"),
        "{read:?}"
    );
    check("worker", read, required);
}
