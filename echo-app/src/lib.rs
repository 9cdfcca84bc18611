//! The echo apps (`echo-app`): app1/app2/app3 of the AWS reference sample,
//! which answer with what they received and call each other through their
//! sidecars; and the echo upstream the tests put behind Envoy.

pub mod app;
pub mod echo;
