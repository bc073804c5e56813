//! Personio (to be written).

use hrsync_core::{Identifiers, Worker};
use jiff::Timestamp;

use crate::connector::{
    BadPayload, BoxFuture, Connector, Delivery, Fetched, HrError, Parsed, Unauthorized,
};
use crate::sources::{Setup, SetupError};

#[derive(Debug)]
pub struct Personio {
    source: String,
}

impl Personio {
    pub fn new(setup: Setup<'_>) -> Result<Self, SetupError> {
        Ok(Self {
            source: setup.name.to_owned(),
        })
    }
}

impl Connector for Personio {
    fn source(&self) -> &str {
        &self.source
    }

    fn verify(&self, _: &Delivery<'_>) -> Result<(), Unauthorized> {
        Err(Unauthorized("not written yet".into()))
    }

    fn parse(&self, _: &Delivery<'_>) -> Result<Parsed, BadPayload> {
        Err(BadPayload("not written yet".into()))
    }

    fn fetch<'a>(&'a self, _: &'a str, _: Timestamp) -> BoxFuture<'a, Result<Fetched, HrError>> {
        Box::pin(std::future::ready(Err(HrError::permanent(
            "not written yet",
        ))))
    }

    fn writes_back(&self) -> bool {
        false
    }

    fn write_back<'a>(
        &'a self,
        _: &'a Worker,
        _: &'a Identifiers,
    ) -> BoxFuture<'a, Result<(), HrError>> {
        Box::pin(std::future::ready(Err(HrError::permanent(
            "not written yet",
        ))))
    }
}
