//! `m2mhub passwd FILE USER`: adds a credential to a password file, or changes its password,
//! without Mosquitto installed. The file is Mosquitto's format (`mosquitto_passwd` reads and
//! writes it too); new entries are PBKDF2-SHA512 (`$7$`). The password is read from the
//! terminal twice without echo, or as the first line of standard input when that is not a
//! terminal (for scripts). A running m2mhub reads the file again on SIGHUP.

use m2mhub::auth::passwords::Passwords;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The password file; created if it does not exist.
    pub file: PathBuf,
    /// The user name: the credential ID clients log in with.
    pub user: String,
}

pub fn run(args: Args) -> ExitCode {
    match add(&args.file, &args.user) {
        Ok(created) => {
            let verb = if created { "created" } else { "updated" };
            eprintln!(
                "{verb} {} with the password of '{}'",
                args.file.display(),
                args.user
            );
            eprintln!("a running m2mhub reads it again on SIGHUP (systemctl reload m2mhub)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m2mhub passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Returns whether the file was created.
fn add(file: &Path, user: &str) -> Result<bool, String> {
    let exists = file.exists();
    let mut passwords = if exists {
        Passwords::load(file)?
    } else {
        Passwords::default()
    };
    let password = read_password()?;
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    passwords.set(user, &password)?;
    // Write beside the file, then rename over it: a crash leaves the old file or the new one.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        file.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mode = if exists {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(file)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o600)
        } else {
            0o600
        };
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        out.write_all(passwords.to_text().as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, file).map_err(|e| format!("cannot replace {}: {e}", file.display()))?;
    Ok(!exists)
}
