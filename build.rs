//! The commit the binary was built from, for `portcullis_build_info{commit=...}`: the
//! `PORTCULLIS_COMMIT` environment variable when set (an image build has no `.git`; pass it as a
//! build argument), otherwise `git rev-parse`, otherwise "unknown".

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("PORTCULLIS_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PORTCULLIS_COMMIT={commit}");
}
