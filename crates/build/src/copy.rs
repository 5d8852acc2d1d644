//! TEMPORARY: the API of the COPY/ADD engine being written on branch
//! build-copy; replaced by that branch's module when it merges.

use std::path::Path;

use crate::ignore::IgnoreMatcher;
use crate::stage::CopyStep;

#[derive(Debug)]
pub enum Source<'a> {
    Context {
        dir: &'a Path,
        ignore: Option<&'a IgnoreMatcher>,
    },
    Rootfs(&'a Path),
}

#[derive(Debug)]
pub struct ApplyOptions<'a> {
    pub users_root: &'a Path,
}

#[derive(Debug, Default)]
pub struct CopyStats {
    pub files: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CopyError(String);

pub fn checksum(_src: &Source<'_>, _step: &CopyStep) -> Result<String, CopyError> {
    Err(CopyError("COPY is not implemented yet".into()))
}

pub fn apply(
    _src: &Source<'_>,
    _step: &CopyStep,
    _root: &Path,
    _opts: &ApplyOptions<'_>,
) -> Result<CopyStats, CopyError> {
    Err(CopyError("COPY is not implemented yet".into()))
}
