//! Connecting to Temporal as the Temporal CLI does (its profile file, its
//! `TEMPORAL_*` variables, then our flags), with one clear error line that
//! names the setting at fault when it cannot.

use std::collections::HashMap;
use std::path::PathBuf;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use temporalio_client::envconfig::{
    ClientConfigProfile, DataSource, LoadClientConfigProfileOptions,
};
use temporalio_client::errors::ClientConnectError;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, GrpcCompression};
use temporalio_common::envconfig::{ClientConfigTLS, load_client_config_profile};

use crate::config::{Compression, TemporalArgs};
use crate::error::WorkerError;

/// The variables of Temporal's environment configuration the worker reads
/// besides its flags' own (the SDK's `envconfig` reads them; listed so that
/// compose's check knows them).
pub const ENVCONFIG_VARIABLES: [&str; 7] = [
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_PROFILE",
];

/// Where a worker connects when nothing says otherwise: the dev server's
/// address as an IPv4 literal (`localhost` may resolve to `::1` first).
const DEFAULT_ADDRESS: &str = "127.0.0.1:7233";

/// `keylease-worker:<pid>@<host name>`. In containers every worker is pid 1, so the
/// host name (the container id under compose) is what tells them apart.
pub fn default_identity() -> String {
    let host = gethostname::gethostname();
    format!(
        "keylease-worker:{}@{}",
        std::process::id(),
        host.to_string_lossy()
    )
}

/// A client of the namespace in `args`, as [`default_identity`].
pub async fn temporal_client(args: &TemporalArgs) -> Result<Client, WorkerError> {
    temporal_client_as(args, default_identity()).await
}

/// A client of the namespace in `args` that gives Temporal `identity`.
pub async fn temporal_client_as(
    args: &TemporalArgs,
    identity: String,
) -> Result<Client, WorkerError> {
    let profile = profile(args)?;
    let address = profile.address.clone().unwrap_or_default();
    let namespace = (profile.namespace.clone()).unwrap_or_else(|| "default".to_owned());
    let tls = profile.tls.clone();
    let uses_api_key = profile.api_key.is_some();
    let mut options = ConnectionOptions::try_from(profile).map_err(|err| {
        WorkerError::Config(format!(
            "Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_TLS_*): {}",
            one_line(&err.to_string())
        ))
    })?;
    options.identity = identity;
    options.grpc_compression = grpc_compression(args.temporal_compression);
    let connection = Connection::connect(options).await.map_err(|err| {
        let err = describe(&err);
        WorkerError::Temporal(format!(
            "cannot reach Temporal at {address}: {err}{}",
            hint(&err, tls.as_ref(), uses_api_key)
        ))
    })?;
    Client::new(connection, ClientOptions::new(namespace.clone()).build())
        .map_err(|err| WorkerError::Temporal(format!("cannot use namespace {namespace}: {err}")))
}

/// The SDK's setting for `compression`.
fn grpc_compression(compression: Compression) -> GrpcCompression {
    match compression {
        Compression::None => GrpcCompression::None,
        Compression::Gzip => GrpcCompression::Gzip,
    }
}

/// The connection profile: the configuration file's profile, the
/// environment's `TEMPORAL_*` variables over it, then the flags; the
/// certificate and key files are read and checked here, so a wrong one is
/// named before anything connects.
pub fn profile(args: &TemporalArgs) -> Result<ClientConfigProfile, WorkerError> {
    // An empty variable is an unset one (compose's `${TEMPORAL_API_KEY:-}`
    // must not turn TLS on with an empty key); one that is not UTF-8 is none
    // of Temporal's.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    // A file named explicitly must be there: a typo must not fall back to
    // a plain local server. Unknown keys (a misspelt `api_key`) are refused.
    if let Some(file) = env.get("TEMPORAL_CONFIG_FILE")
        && !std::path::Path::new(file).is_file()
    {
        return Err(WorkerError::Config(format!(
            "TEMPORAL_CONFIG_FILE {file} is not a file"
        )));
    }
    let options = LoadClientConfigProfileOptions::builder()
        .maybe_config_file_profile(args.profile.clone())
        .config_file_strict(true)
        .build();
    let mut profile = load_client_config_profile(options, Some(&env)).map_err(|err| {
        WorkerError::Config(format!(
            "Temporal configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE / --profile, TEMPORAL_*): {}",
            without_source(&err.to_string())
        ))
    })?;
    let given = |flag: &Option<String>| flag.clone().filter(|value| !value.is_empty());
    if let Some(address) = given(&args.temporal_address) {
        profile.address = Some(address);
    }
    let address = profile
        .address
        .get_or_insert_with(|| DEFAULT_ADDRESS.to_owned());
    if address.contains("://") && url::Url::parse(address).is_err() {
        return Err(WorkerError::Config(format!(
            "TEMPORAL_ADDRESS (--temporal-address) {address:?} is not an address"
        )));
    }
    if let Some(namespace) = given(&args.namespace) {
        profile.namespace = Some(namespace);
    }
    if let Some(key) = (args.api_key.as_ref()).filter(|key| !key.expose_secret().is_empty()) {
        profile.api_key = Some(key.expose_secret().to_owned());
    }
    let path = |flag: &Option<PathBuf>| {
        (flag.as_ref())
            .filter(|path| !path.as_os_str().is_empty())
            .map(|path| DataSource::Path(path.display().to_string()))
    };
    let (cert, key, ca) = (
        path(&args.tls_cert),
        path(&args.tls_key),
        path(&args.tls_ca),
    );
    let server_name = given(&args.tls_server_name);
    if cert.is_some() || key.is_some() || ca.is_some() || server_name.is_some() {
        let tls = profile.tls.get_or_insert_with(ClientConfigTLS::default);
        tls.client_cert = cert.or(tls.client_cert.take());
        tls.client_key = key.or(tls.client_key.take());
        tls.server_ca_cert = ca.or(tls.server_ca_cert.take());
        tls.server_name = server_name.or(tls.server_name.take());
    }
    if let Some(tls) = &mut profile.tls {
        check_tls(tls)?;
    }
    check_transport(&profile)?;
    Ok(profile)
}

/// Refuses settings under which TLS, a client certificate or an API key
/// would not protect what they should: an address whose scheme is not
/// `https` while TLS is on (the SDK keeps the scheme, and only `https`
/// gets TLS), and an API key sent without TLS to another host.
fn check_transport(profile: &ClientConfigProfile) -> Result<(), WorkerError> {
    let tls_on = match &profile.tls {
        Some(tls) => tls.disabled != Some(true),
        None => profile.api_key.is_some(),
    };
    let address = profile.address.as_deref().unwrap_or(DEFAULT_ADDRESS);
    let url = match address.split_once("://") {
        Some(_) => url::Url::parse(address).ok(),
        None => url::Url::parse(&format!("http://{address}")).ok(),
    };
    if tls_on && address.contains("://") {
        let scheme = url.as_ref().map(url::Url::scheme).unwrap_or_default();
        if scheme != "https" {
            return Err(WorkerError::Config(format!(
                "TEMPORAL_ADDRESS (--temporal-address) has scheme {scheme:?} while TLS is on (an API key, a CA, a client certificate or TEMPORAL_TLS): the connection would be plain; give host:port or an https:// URL"
            )));
        }
    }
    let loopback = url.as_ref().is_some_and(crate::config::on_this_host);
    if profile.api_key.is_some() && !tls_on && !loopback {
        return Err(WorkerError::Config(
            "TEMPORAL_API_KEY (--api-key) would travel in clear text: TLS is turned off (TEMPORAL_TLS=false or the profile's tls.disabled) for a host other than this one".to_owned(),
        ));
    }
    Ok(())
}

/// Reads each certificate and key of `tls` (replacing a path by its
/// contents) and checks it is PEM of the right kind; refuses turning host
/// verification off, which the worker does not support.
fn check_tls(tls: &mut ClientConfigTLS) -> Result<(), WorkerError> {
    if tls.disable_host_verification {
        return Err(WorkerError::Config(
            "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is not supported: name the certificate's host with TEMPORAL_TLS_SERVER_NAME (--tls-server-name)".to_owned(),
        ));
    }
    let settings = [
        (
            &mut tls.client_cert,
            ("TEMPORAL_TLS_CLIENT_CERT", "--tls-cert"),
            Pem::Certificate,
        ),
        (
            &mut tls.client_key,
            ("TEMPORAL_TLS_CLIENT_KEY", "--tls-key"),
            Pem::PrivateKey,
        ),
        (
            &mut tls.server_ca_cert,
            ("TEMPORAL_TLS_SERVER_CA_CERT", "--tls-ca"),
            Pem::Certificate,
        ),
    ];
    for (source, setting, kind) in settings {
        if let Some(found) = source.take() {
            *source = Some(DataSource::Data(read_pem(found, setting, kind)?));
        }
    }
    Ok(())
}

/// What a PEM setting must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// The bytes of `source`, checked to hold `kind`; the error names the
/// setting (`(variable stem, flag)`) and the path, never the contents.
fn read_pem(
    source: DataSource,
    (stem, flag): (&str, &str),
    kind: Pem,
) -> Result<Vec<u8>, WorkerError> {
    let (bytes, origin) = match source {
        DataSource::Path(path) => {
            let origin = format!("{stem}_PATH ({flag}) {path}");
            let bytes = std::fs::read(&path)
                .map_err(|err| WorkerError::Config(format!("{origin}: cannot read it: {err}")))?;
            (bytes, origin)
        }
        DataSource::Data(bytes) => (bytes, format!("{stem}_DATA")),
        _ => {
            return Err(WorkerError::Config(format!(
                "{stem}: an unsupported kind of source"
            )));
        }
    };
    let valid = match kind {
        Pem::Certificate => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .is_ok_and(|certs| !certs.is_empty()),
        Pem::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
    };
    if !valid {
        let what = match kind {
            Pem::Certificate => "PEM certificate",
            Pem::PrivateKey => "PEM private key",
        };
        return Err(WorkerError::Config(format!("{origin}: holds no {what}")));
    }
    Ok(bytes)
}

/// A configuration error without the source lines a TOML parser quotes
/// (they may hold an API key): its first line and its explanation.
fn without_source(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains('|') && !line.trim_start().starts_with('^'))
        .collect();
    one_line(&kept.join(" "))
}

/// The setting most likely at fault for a connection error `err`.
fn hint(err: &str, tls: Option<&ClientConfigTLS>, uses_api_key: bool) -> &'static str {
    let err = err.to_ascii_lowercase();
    if err.contains("notvalidforname") {
        "; the server's certificate is for another name: check TEMPORAL_TLS_SERVER_NAME (--tls-server-name) and the address"
    } else if err.contains("keymismatch") || err.contains("private key") {
        "; the client key does not fit the certificate: check TEMPORAL_TLS_CLIENT_KEY_PATH (--tls-key) and TEMPORAL_TLS_CLIENT_CERT_PATH (--tls-cert)"
    } else if err.contains("unknownissuer") || err.contains("invalid peer certificate") {
        "; the server's certificate is not trusted: check TEMPORAL_TLS_SERVER_CA_CERT_PATH (--tls-ca) and TEMPORAL_TLS_SERVER_NAME (--tls-server-name)"
    } else if tls.is_some_and(|tls| tls.client_cert.is_some())
        && !err.contains("tcp connect error")
        && !err.contains("unauthenticated")
    {
        // Under TLS 1.3 a refused client certificate shows only as the
        // server closing the connection after the handshake (closed,
        // canceled, broken pipe: whichever the first call meets).
        "; the server refused the client certificate or closed the connection: check TEMPORAL_TLS_CLIENT_CERT_PATH (--tls-cert, expired or not issued by the server's CA) and TEMPORAL_TLS_CLIENT_KEY_PATH (--tls-key)"
    } else if err.contains("unauthenticated") || err.contains("permissiondenied") {
        if uses_api_key {
            "; the server refused the API key: check TEMPORAL_API_KEY (--api-key)"
        } else {
            "; the server wants credentials: set TEMPORAL_API_KEY (--api-key) or a client certificate (--tls-cert, --tls-key)"
        }
    } else if tls.is_some_and(|tls| tls.client_cert.is_none())
        && [
            "broken pipe",
            "connection closed",
            "canceled",
            "certificaterequired",
        ]
        .iter()
        .any(|sign| err.contains(sign))
    {
        "; the server closed the connection, as one that wants a client certificate does: set TEMPORAL_TLS_CLIENT_CERT_PATH (--tls-cert) and TEMPORAL_TLS_CLIENT_KEY_PATH (--tls-key)"
    } else if tls.is_none() && !uses_api_key && err.contains("connection") {
        "; if the server wants TLS, set TEMPORAL_TLS=true or --tls-ca"
    } else {
        ""
    }
}

/// `err` on one line: a failed first call as its code, message and cause
/// (not the whole `Status` with its metadata).
fn describe(err: &ClientConnectError) -> String {
    match err {
        ClientConnectError::SystemInfoCallError(status) => {
            let cause = std::error::Error::source(status)
                .map(|cause| format!(" ({cause:?})"))
                .unwrap_or_default();
            one_line(&format!(
                "the first call failed: {:?}: {}{cause}",
                status.code(),
                status.message()
            ))
        }
        other => one_line(&other.to_string()),
    }
}

/// `text` on one line: error chains may span several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        temporal: TemporalArgs,
    }

    /// Issue 24's fifth sitting: calls to Temporal are gzipped only when asked.
    #[test]
    fn calls_to_temporal_are_compressed_only_when_asked() {
        let compression = |flags: &[&str]| {
            let flags = Flags::try_parse_from([&["worker"], flags].concat())?;
            Ok::<_, clap::Error>(grpc_compression(flags.temporal.temporal_compression))
        };
        assert_eq!(compression(&[]).unwrap(), GrpcCompression::None);
        let gzip = compression(&["--temporal-compression", "gzip"]).unwrap();
        assert_eq!(gzip, GrpcCompression::Gzip);
        let err = compression(&["--temporal-compression", "zstd"]).unwrap_err();
        assert!(
            err.to_string().contains("possible values: none, gzip"),
            "{err}"
        );
    }

    #[test]
    fn flags_win_over_the_profile_and_empty_values_count_as_unset() {
        let mut args = TemporalArgs::at("temporal.example:7233", "q");
        args.namespace = Some(String::new());
        args.api_key = Some(String::new().into());
        args.tls_ca = Some(PathBuf::new());
        let profile = profile(&args).unwrap();
        assert_eq!(profile.address.as_deref(), Some("temporal.example:7233"));
        assert_eq!(profile.api_key, None, "an empty key turns nothing on");
        assert!(profile.tls.is_none(), "an empty CA path turns nothing on");
    }

    #[test]
    fn tls_or_an_api_key_never_goes_out_in_clear_text() {
        let remote_key = |address: &str| {
            ClientConfigProfile::builder()
                .address(address.to_owned())
                .api_key("tmprl-secret".to_owned())
                .build()
        };
        for address in [
            "http://temporal.example:7233",
            "HTTP://temporal.example:7233",
            "grpc://h:1",
        ] {
            let err = check_transport(&remote_key(address))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("TEMPORAL_ADDRESS") && !err.contains("tmprl-secret"),
                "{err}"
            );
        }
        assert!(check_transport(&remote_key("temporal.example:7233")).is_ok());
        assert!(check_transport(&remote_key("https://temporal.example:7233")).is_ok());
        let mut off = remote_key("temporal.example:7233");
        off.tls = Some(ClientConfigTLS::builder().disabled(true).build());
        let err = check_transport(&off).unwrap_err().to_string();
        assert!(
            err.contains("TEMPORAL_API_KEY") && err.contains("clear text"),
            "{err}"
        );
        off.address = Some("127.0.0.1:7233".to_owned());
        assert!(check_transport(&off).is_ok(), "a dev server on this host");
    }

    #[test]
    fn a_toml_error_keeps_its_position_and_drops_the_quoted_source() {
        let err = "TOML parse error at line 2, column 11\n  |\n2 | api_key = TOMLSECRET\n  |           ^\ninvalid boolean\n";
        let kept = without_source(err);
        assert_eq!(
            kept,
            "TOML parse error at line 2, column 11 invalid boolean"
        );
    }

    #[test]
    fn a_file_that_is_not_pem_is_named_by_its_setting_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-pem.txt");
        std::fs::write(&file, "secret-looking-bytes").unwrap();
        let mut args = TemporalArgs::at("127.0.0.1:7233", "q");
        args.tls_cert = Some(file.clone());
        args.tls_key = Some(file);
        let err = profile(&args).unwrap_err().to_string();
        assert!(
            err.contains("TEMPORAL_TLS_CLIENT_CERT_PATH (--tls-cert)")
                && err.contains("holds no PEM certificate"),
            "{err}"
        );
        assert!(!err.contains("secret-looking-bytes"), "{err}");
    }
}
