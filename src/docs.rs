//! Man pages and shell completions, generated from the command line's own `clap`
//! definition (never written by hand, so they cannot drift from `--help`).
//!
//! The `Cli` struct lives in the binary (`main.rs`); it hands its `clap::Command` here.
//! `mcvpn completions SHELL` prints a script to stdout (the rustup convention, so a user
//! without the package can still install them); `scripts/package.sh` writes all of them
//! for the .deb with the hidden `mcvpn debug gen-docs --out DIR`.

use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// The shells the package ships completions for, with the file name each one's
/// standard directory expects.
pub const PACKAGED_SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "mcvpn"),
    (Shell::Zsh, "_mcvpn"),
    (Shell::Fish, "mcvpn.fish"),
];

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn std::io::Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes `mcvpn.1` and one page per visible subcommand (`mcvpn-hub.1`, `mcvpn-up.1`,
/// `mcvpn-admin-contract.1`, …) into `dir/man1`, and the packaged completions into
/// `dir/completions`. Returns how many man pages were written.
pub fn generate_all(cmd: clap::Command, dir: &Path) -> Result<usize> {
    let man_dir = dir.join("man1");
    let completion_dir = dir.join("completions");
    for d in [&man_dir, &completion_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man_dir)
        .with_context(|| format!("cannot write the man pages into {}", man_dir.display()))?;
    for (shell, file) in PACKAGED_SHELLS {
        let path = completion_dir.join(file);
        let mut out = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        write_completions(cmd.clone(), shell, &mut out);
    }
    let pages = std::fs::read_dir(&man_dir)?.filter(|e| e.is_ok()).count();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> clap::Command {
        clap::Command::new("mcvpn")
            .about("sample")
            .subcommand(
                clap::Command::new("up")
                    .about("bring it up")
                    .arg(clap::arg!(--hub <URL> "the hub")),
            )
            .subcommand(clap::Command::new("client-daemon").hide(true))
    }

    #[test]
    fn one_man_page_per_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let pages = generate_all(sample(), dir.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("man1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["mcvpn-up.1", "mcvpn.1"], "hidden commands get no page");
        assert_eq!(pages, 2);
        let up = std::fs::read_to_string(dir.path().join("man1/mcvpn-up.1")).unwrap();
        assert!(up.contains("bring it up") && up.contains("hub"), "{up}");
        let bash = std::fs::read_to_string(dir.path().join("completions/mcvpn")).unwrap();
        assert!(bash.contains("complete -F") && bash.contains("--hub"), "{bash}");
        let zsh = std::fs::read_to_string(dir.path().join("completions/_mcvpn")).unwrap();
        assert!(zsh.starts_with("#compdef mcvpn"), "{zsh}");
        let fish = std::fs::read_to_string(dir.path().join("completions/mcvpn.fish")).unwrap();
        assert!(fish.contains("complete -c mcvpn"), "{fish}");
    }
}
