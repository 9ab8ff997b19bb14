//! YAML with source positions, shared by the YAML extractors.
