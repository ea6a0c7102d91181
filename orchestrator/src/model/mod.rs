//! Profiles, the analytical model of service time and expense, the planner and the plan store.
