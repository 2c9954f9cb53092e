//! geomem-data
