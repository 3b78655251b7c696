//! Apply: carry out a plan against the KFP API.
