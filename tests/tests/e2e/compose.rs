//! The compose file and the binaries cannot drift apart: every variable it
//! gives the broker and the worker is one they read, and every setting they
//! require is given. And the file is safe by default: ports on loopback, the
//! database password outside any URL, start-up jobs that end.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory};
use keylease_tests::compose;

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

fn check(service: &str, read: BTreeSet<String>, required: BTreeSet<String>) {
    let given: BTreeSet<String> = compose::environment(service).into_keys().collect();
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
    for name in [
        "KEYLEASE_BROKER_ADMIN_TOKEN",
        "KEYLEASE_BROKER_DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
    ] {
        assert!(read.contains(name), "the broker reads {name}: {read:?}");
    }
    check("broker", read, required);
}

/// The worker's variables for subcommand `path` (`["run"]`, `["role", "setup"]`),
/// global flags included: what it reads, and what it requires.
fn worker_env(path: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let cli = keylease_worker::cli::Cli::command();
    let (mut read, mut required) = (BTreeSet::new(), BTreeSet::new());
    for arg in cli.get_arguments() {
        if let Some(env) = arg.get_env() {
            read.insert(env.to_string_lossy().into_owned());
        }
    }
    let mut command = &cli;
    for name in path {
        command = command.find_subcommand(name).expect("a worker subcommand");
    }
    env_names(command, &mut read, &mut required);
    (read, required)
}

#[test]
fn compose_gives_the_worker_only_what_it_reads() {
    let (mut read, required) = worker_env(&["run"]);
    read.extend(keylease_worker::connect::ENVCONFIG_VARIABLES.map(str::to_owned));
    for name in [
        "KEYLEASE_BROKER_TOKEN",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_WORKER_IDENTITY",
    ] {
        assert!(read.contains(name), "the worker reads {name}: {read:?}");
    }
    check("worker", read, required);
}

/// Issue 21: the worker holds a role token, never the admin token; only the
/// one-shot `broker-role` job (and the broker) get the admin token.
#[test]
fn compose_gives_the_admin_token_to_the_role_job_never_the_worker() {
    let worker = compose::environment("worker");
    assert_eq!(
        worker.get("KEYLEASE_BROKER_TOKEN").map(String::as_str),
        Some("${KEYLEASE_WORKER_TOKEN:?set KEYLEASE_WORKER_TOKEN in .env}")
    );
    let carriers: Vec<_> = worker
        .iter()
        .filter(|(_, value)| value.contains("KEYLEASE_BROKER_ADMIN_TOKEN"))
        .collect();
    assert!(
        carriers.is_empty(),
        "the worker gets the admin token: {carriers:?}"
    );
    let (read, required) = worker_env(&["role", "setup"]);
    assert!(
        required.contains("KEYLEASE_BROKER_ADMIN_TOKEN"),
        "{required:?}"
    );
    check("broker-role", read, required);
    let job = compose::service("broker-role");
    assert_eq!(job["restart"], "no", "a job that ends");
    assert_eq!(
        compose::service("worker")["depends_on"]["broker-role"]["condition"],
        "service_completed_successfully"
    );
}

/// A password in a URL must be percent-encoded, which compose cannot do: the broker
/// gets it as `PGPASSWORD`, and no other variable carries it.
#[test]
fn compose_gives_the_broker_its_password_outside_any_url() {
    let broker = compose::environment("broker");
    assert_eq!(
        broker.get("PGPASSWORD").map(String::as_str),
        Some("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}")
    );
    let carriers: Vec<_> = broker
        .iter()
        .filter(|(name, value)| *name != "PGPASSWORD" && value.contains("POSTGRES_PASSWORD"))
        .map(|(name, _)| name)
        .collect();
    assert!(carriers.is_empty(), "the password is also in {carriers:?}");
}

/// With `.env.example` as it is, nothing is published beyond this host.
#[test]
fn compose_publishes_ports_on_loopback_by_default() {
    let mut published = 0;
    for service in compose::services() {
        for port in compose::ports(&service) {
            let resolved = compose::interpolate(&port, &Default::default()).unwrap();
            assert!(
                resolved.starts_with("127.0.0.1:"),
                "{service} publishes {port:?} as {resolved:?}, not on 127.0.0.1"
            );
            let widened =
                compose::interpolate(&port, &[("KEYLEASE_PUBLISH_ADDRESS", "0.0.0.0")].into())
                    .unwrap();
            assert!(widened.starts_with("0.0.0.0:"), "{service}: {port:?}");
            published += 1;
        }
    }
    assert_eq!(
        published, 4,
        "Temporal, its UI, the broker's API and its Stripe root"
    );
    assert_eq!(
        compose::env_example("KEYLEASE_PUBLISH_ADDRESS"),
        "127.0.0.1"
    );
}

/// The image's first-start init server listens on the socket only; a TCP probe
/// does not mistake it for the real server.
#[test]
fn postgres_health_is_asked_over_tcp() {
    let test = compose::service("postgresql")["healthcheck"]["test"].clone();
    let command = test[1].as_str().expect("CMD-SHELL and a command");
    assert!(command.contains("pg_isready -h 127.0.0.1"), "{command}");
}

/// The namespace job gives up, non-zero, when Temporal never serves; it used to loop
/// forever. Runs the script with the real Temporal CLI against a closed port.
#[tokio::test]
async fn the_namespace_job_ends_when_temporal_never_serves() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let temporal = keylease_tests::temporal::temporal_bin();
    let cli = temporal.parent().expect("the CLI's directory");
    let path = format!(
        "{}:{}",
        cli.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let closed = format!("127.0.0.1:{}", keylease_testkit::ports::free_port());
    let run = tokio::process::Command::new("sh")
        .arg(root.join("compose/scripts/create-namespace.sh"))
        .env("PATH", path)
        .env("TEMPORAL_ADDRESS", &closed)
        .env("TEMPORAL_HEALTH_ATTEMPTS", "3")
        .env("TEMPORAL_HEALTH_INTERVAL", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the job ends instead of waiting forever")
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Temporal at {closed} is not SERVING after 3 attempts"
        )),
        "{stderr}"
    );
}
