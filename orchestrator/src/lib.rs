//! ProPack orchestrator: chooses the packing degree k and runs packed serverless jobs.
//!
//! - [`billing`]: one pricing function for predicted, simulated and measured runs;
//! - [`batching`]: uneven tasks — balanced batches (LPT) in manifest order, a batch's duration from its weights;
//! - [`pipeline`]: the launch pipeline (stage → profile → plan → definition → run → verify →
//!   bill → report) as library functions over typed values;
//! - [`model`]: profiles, the analytical model, the planner and the plan store;
//! - [`platform`]: platform profiles shared by the model, the local platform and the simulator;
//! - [`platforms`]: the profiles shipped as files (FuncX, Azure Flex Consumption, Cloud Run) with their sources;
//! - [`journal`]: every batch's end appended to the run directory as it arrives (crash-safe
//!   runs and `orchestrator resume`);
//! - [`records`]: what a run measured, and the metrics computed from it;
//! - [`backend`]: the local platform, AWS and the simulator behind one trait;
//! - [`evaluate`]: ProPack vs no packing, the Oracle and PyWren on the simulator (what it computes);
//! - [`report`]: a launch's run directory (run.json, instances.csv, `--json` summary) and all
//!   rendering — markdown and SVG plots of runs and evaluations, with one escape.
//!
//! The `orchestrator` binary (src/main.rs, one module per subcommand under
//! `cmd/`) is a thin layer over this library.

pub mod backend;
pub mod batching;
pub mod billing;
pub mod evaluate;
pub mod function;
pub mod journal;
pub mod model;
pub mod pipeline;
pub mod platform;
pub mod platforms;
pub mod records;
pub mod report;
