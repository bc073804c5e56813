//! The hibob API emulator (to be written).

use axum::Router;

use crate::State;

pub fn router(_state: State) -> Router {
    Router::new()
}
