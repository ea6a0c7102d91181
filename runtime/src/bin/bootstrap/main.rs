//! `bootstrap`: ProPack's packed custom Lambda runtime.

fn main() {}
