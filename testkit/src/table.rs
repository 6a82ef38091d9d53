//! Tables of bad inputs: every row is checked, what went wrong is collected
//! as one line a row, and the test fails once, listing them all.

use std::process::Output;

/// `None` for a non-zero exit whose stderr names `names`; else what is wrong with row `case`.
pub fn refused(case: &str, output: &Output, names: &str) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        return Some(format!("{case}: exited 0: {stderr}"));
    }
    (!stderr.contains(names))
        .then(|| format!("{case}: the error does not name {names:?}: {stderr}"))
}

/// Fails the test, listing every row's problem, when there are any.
pub fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} rows failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Sets `variable` in `env` to `value`, or leaves it out when `value` is `None`:
/// one row's change to an environment that would start.
pub fn set_var(env: &mut Vec<(String, String)>, variable: &str, value: Option<&str>) {
    env.retain(|(k, _)| k != variable);
    if let Some(value) = value {
        env.push((variable.to_owned(), value.to_owned()));
    }
}
