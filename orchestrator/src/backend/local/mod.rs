//! The embedded local Lambda + Step Functions platform.
