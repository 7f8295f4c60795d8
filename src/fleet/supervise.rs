//! Running a fleet: placeholder until the supervisor lands.
