//! Typed Amazon States Language (ASL) for ProPack's packed Map runs.
