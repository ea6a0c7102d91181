//! Seeded discrete-event simulator of a serverless platform.
