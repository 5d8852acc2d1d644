//! berth's image builder: a Dockerfile parser, Docker's variable expansion,
//! the stage model with its image-config semantics, `.dockerignore`
//! matching, and the COPY/ADD engine. Nothing here runs a container or
//! writes an image; [`copy::apply`] writes files into a root filesystem the
//! executor gives it.
//!
//! The pieces in build order: [`parser::parse`] gives a typed
//! [`parser::Dockerfile`]; [`stage::split_stages`] cuts it into a
//! [`stage::Plan`]; [`stage::Plan::build_order`] names the stages a
//! `--target` needs; [`stage::evaluate`] turns one stage and its base image's
//! config into the new config plus the RUN and COPY steps an executor
//! performs; [`ignore`] filters the build context; [`copy`] hashes
//! ([`copy::checksum`]) and performs ([`copy::apply`]) a COPY or ADD step.

// A library never prints nor exits: the binaries own the terminal and the
// process (CONTRIBUTING). Test modules may print why they skipped.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)
)]

pub mod command;
pub mod copy;
pub mod expand;
pub mod ignore;
pub mod parser;
pub mod stage;

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Parse(#[from] parser::ParseError),
    #[error(transparent)]
    Stage(#[from] stage::StageError),
    #[error(transparent)]
    Ignore(#[from] ignore::PatternError),
}

/// Parse a Dockerfile and split it into stages.
pub fn load(file: &str, text: &str) -> Result<stage::Plan, BuildError> {
    Ok(stage::split_stages(&parser::parse(file, text)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_either_error_in_one_line() {
        assert_eq!(
            load("Containerfile", "FROM a\nBOGUS x\n")
                .unwrap_err()
                .to_string(),
            "Containerfile:2: unknown instruction: BOGUS"
        );
        assert_eq!(
            load("Containerfile", "USER x\nFROM a\n")
                .unwrap_err()
                .to_string(),
            "Containerfile:1: USER before the first FROM: only ARG may precede FROM"
        );
        assert_eq!(
            load("Containerfile", "FROM a AS x\nFROM b AS y\n")
                .unwrap()
                .stages
                .len(),
            2
        );
    }
}
