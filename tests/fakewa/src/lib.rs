//! fakewa
