//! Payment schemes. Only `exact` on Cardano for now.
