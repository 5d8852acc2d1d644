//! berth's image builder, pure logic: a Dockerfile parser, Docker's variable
//! expansion, the stage model with its image-config semantics, and
//! `.dockerignore` matching. Nothing here runs a container or writes an image.

pub mod command;
pub mod expand;
pub mod ignore;
pub mod parser;
pub mod stage;
