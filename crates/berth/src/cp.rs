//! `cp`: files between a container and the host.

use anyhow::{bail, Result};
use berth_engine::Engine;

/// `cp`: exactly one side is a container.
pub(crate) fn copy(
    engine: &Engine,
    src: &str,
    dest: &str,
    opts: berth_engine::cp::Options,
) -> Result<()> {
    use berth_engine::cp::{Arg, End, Root};
    let (s, d) = (Arg::parse(src), Arg::parse(dest));
    match (&s, &d) {
        (Arg::Container(..), Arg::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Arg::Container(..), _) | (_, Arg::Container(..)) => {}
        _ => bail!("must specify at least one container source"),
    }
    let roots: Vec<Root> = [&s, &d]
        .iter()
        .map(|a| match a {
            Arg::Container(c, p) => {
                let r = engine.find(c).map_err(|e| match e {
                    // Docker's words name the path too.
                    berth_engine::Error::NoSuchContainer(_) => berth_engine::Error::PathNotFound(
                        format!("No such container:path: {c}:{}", p.display()),
                    ),
                    e => e,
                })?;
                Root::container(engine, &r)
            }
            _ => Root::host(),
        })
        .collect::<berth_engine::Result<_>>()?;
    fn end<'a>(a: &Arg, root: &'a Root, source: bool) -> Result<End<'a>> {
        use berth_engine::cp::Stream;
        Ok(match a {
            Arg::Container(_, p) => End::Path(root, p.clone()),
            Arg::Host(p) => End::Path(root, berth_engine::cp::absolute_host(p)?),
            Arg::Stream if source => End::Stream(Stream::Input(Box::new(std::io::stdin().lock()))),
            Arg::Stream => End::Stream(Stream::Output(Box::new(std::io::stdout().lock()))),
        })
    }
    berth_engine::cp::copy(end(&s, &roots[0], true)?, end(&d, &roots[1], false)?, opts)?;
    Ok(())
}
