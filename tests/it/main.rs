//! The one integration-test binary: black-box tests of the three commands
//! against real registries and daemons started by `support`.
