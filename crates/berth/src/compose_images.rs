//! `berth compose build/pull/push`, and the image provider `up` and
//! `run` use: pulls through the registry client and builds through
//! `berth build`'s own code, as `berth pull`, `berth push` and
//! `berth build` would.

use std::path::Path;

use anyhow::Result;
use berth_compose::up::{Images, Step};
use berth_compose::Project;
use berth_engine::Engine;
use clap::Parser;
use serde_json::Value;

use crate::compose::{chosen, ComposeCommand};
use crate::compose_up::step;

/// The image provider of the command line.
pub fn front_end_images<'a>(root: &'a Path, runroot: &'a Path) -> impl Images + 'a {
    FrontEndImages { root, runroot }
}

/// Pulls through the registry client and builds through `berth build`'s
/// own code, as `berth pull` and `berth build` would.
struct FrontEndImages<'a> {
    root: &'a Path,
    runroot: &'a Path,
}

impl Images for FrontEndImages<'_> {
    fn pull(&mut self, engine: &mut Engine, image: &str) -> Result<(), String> {
        let registry = crate::transfer::RegistryArgs {
            tls_verify: None,
            cert_dir: None,
            authfile: None,
            creds: None,
        };
        crate::transfer::pull_for_run(engine.images_mut(), &registry, image, false)
            .map_err(|e| format!("{e:#}"))
    }

    fn build(
        &mut self,
        _engine: &mut Engine,
        _service: &str,
        b: &Value,
        image: &str,
    ) -> Result<(), String> {
        #[derive(Parser)]
        struct Words {
            #[command(flatten)]
            args: crate::building::BuildArgs,
        }
        let ctx = b["context"].as_str().unwrap_or(".");
        let mut words = vec!["build".to_string(), "-t".into(), image.to_string()];
        let dockerfile = b["dockerfile"].as_str().unwrap_or("Dockerfile");
        words.extend([
            "-f".into(),
            Path::new(ctx).join(dockerfile).display().to_string(),
        ]);
        for (k, v) in b["args"].as_object().into_iter().flatten() {
            match v {
                Value::Null => words.extend(["--build-arg".into(), k.clone()]),
                v => words.extend([
                    "--build-arg".into(),
                    format!("{k}={}", berth_compose::canon::scalar_text(v)),
                ]),
            }
        }
        for (k, v) in b["labels"].as_object().into_iter().flatten() {
            words.extend([
                "--label".into(),
                format!("{k}={}", berth_compose::canon::scalar_text(v)),
            ]);
        }
        if let Some(t) = b["target"].as_str() {
            words.extend(["--target".into(), t.to_string()]);
        }
        words.push(ctx.to_string());
        let parsed = Words::try_parse_from(&words)
            .map_err(|e| e.to_string().lines().next().unwrap_or("").to_string())?;
        match crate::building::build(self.root, self.runroot, 64 << 30, &parsed.args) {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("the build failed ({code})")),
            Err(e) => Err(format!("{e:#}")),
        }
    }
}

/// build, pull or push.
pub fn run(
    engine: &mut Engine,
    p: &Project,
    c: &ComposeCommand,
    images: &mut dyn Images,
) -> Result<i32> {
    match c {
        ComposeCommand::Build { services, .. } => {
            for svc in chosen(p, services)? {
                let s = p.service(&svc)?;
                let Some(b) = s.get("build").filter(|b| b.is_object()) else {
                    continue;
                };
                let image = berth_compose::service::image_name(p, &svc, s);
                images
                    .build(engine, &svc, b, &image)
                    .map_err(|e| anyhow::anyhow!("service {svc:?}: build: {e}"))?;
                step(Step {
                    kind: "Image",
                    name: image,
                    state: "Built".into(),
                });
            }
            Ok(0)
        }
        ComposeCommand::Pull { services, quiet } => {
            for svc in chosen(p, services)? {
                let s = p.service(&svc)?;
                let Some(image) = s["image"].as_str() else {
                    continue;
                };
                if s.get("build").is_some() && engine.images().resolve(image).is_ok() {
                    continue;
                }
                images
                    .pull(engine, image)
                    .map_err(|e| anyhow::anyhow!("service {svc:?}: pull {image}: {e}"))?;
                if !quiet {
                    step(Step {
                        kind: "Image",
                        name: image.to_string(),
                        state: "Pulled".into(),
                    });
                }
            }
            Ok(0)
        }
        ComposeCommand::Push {
            services,
            quiet,
            ignore_push_failures,
        } => {
            // Services with an image name (a built image is pushed under it).
            for svc in chosen(p, services)? {
                let Some(image) = p.service(&svc)?["image"].as_str() else {
                    continue;
                };
                #[derive(Parser)]
                struct Words {
                    #[command(flatten)]
                    args: crate::transfer::PushArgs,
                }
                let mut words = vec!["push"];
                if *quiet {
                    words.push("-q");
                }
                words.push(image);
                let mut parsed = Words::try_parse_from(&words).map_err(|e| {
                    anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or(""))
                })?;
                parsed.args.no_name = true;
                match crate::transfer::push(engine.images(), &parsed.args) {
                    Ok(()) => {}
                    Err(e) if *ignore_push_failures => {
                        eprintln!("berth compose: warning: push {image}: {e:#}")
                    }
                    Err(e) => return Err(e.context(format!("service {svc:?}: push {image}"))),
                }
            }
            Ok(0)
        }
        _ => Ok(0),
    }
}
